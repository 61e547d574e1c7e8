"""The DISTINCT_SCAN of an aggregation, as mongod plans and charges it.

mongod answers [$match] [$sort] $group{_id: '$f', x: {$first: '$g'}...}
with one index seek per group instead of reading every document, when an
index makes it exact: f is a field of the index, not multikey; every field
before f is bound by an equality; every predicate of the $match is on the
index's fields with bounds that are exact (no filter left for a fetch, which
could drop the first key of a group and with it the group); the $sort, when
there is one, is given by the index (the equality-bound fields aside) and
starts with f; the accumulators are $first only (and a $group with one
needs the $sort that says which is first). Anything else is not a distinct
scan here, whatever mongod might still manage: the development server may
be stricter than mongod, never kinder.

plan(pipeline, indexes, documents) is the pure decision; run() computes the
groups and charges the scan: per account (per value of f) within the
equality-bound prefix, one key to land on it and one to seek past it (mongod
seeks to each value's first key in the bounds and then past the value, and
lands on a key each time), one more at the end, and a document per group
when an accumulator or the group key reads a field outside the index.
"""

import copy

import mongomock.aggregate
from bson.objectid import ObjectId
from mongomock.filtering import filter_applies

_EXACT_OPS = frozenset(['$eq', '$in', '$gt', '$gte', '$lt', '$lte', '$ne',
                        '$nin'])
_MISSING = object()


def _plain(v):
    """A value whose index bounds are exact: not null (which a fetch tells
    from missing), not a document, an array or a pattern."""
    return isinstance(v, (str, int, float, ObjectId)) or \
        type(v).__name__ in ('Int64', 'datetime', 'Decimal128')


def _point(cond):
    """The one value an equality binds, or _MISSING."""
    if not isinstance(cond, dict):
        return cond if _plain(cond) else _MISSING
    if list(cond) == ['$eq'] and _plain(cond['$eq']):
        return cond['$eq']
    if list(cond) == ['$in'] and isinstance(cond['$in'], list) and \
            len(cond['$in']) == 1 and _plain(cond['$in'][0]):
        return cond['$in'][0]
    return _MISSING


def _exact(cond):
    """Whether a field's condition gives the index exact bounds."""
    if not isinstance(cond, dict):
        return _plain(cond)
    if not cond or not set(cond) <= _EXACT_OPS:
        return False
    for op, arg in cond.items():
        values = arg if op in ('$in', '$nin') else [arg]
        if op in ('$in', '$nin') and not isinstance(arg, list):
            return False
        if not all(_plain(v) for v in values):
            return False
    return True


def _field_path(v):
    if isinstance(v, str) and v[:1] == '$' and v[1:2] not in ('$', ''):
        return v[1:]
    return None


class Plan:
    """A distinct scan: the index, the group's field and its accumulators
    ({output: path}), the stages before and after."""

    __slots__ = ('index', 'field', 'firsts', 'match', 'prefix', 'sort',
                 'rest', 'covered')

    def summary(self):
        return 'DISTINCT_SCAN %s' % self.index.describe()


def _multikey(documents, paths):
    """Whether any document holds an array on a path (mongod's multikey
    index then never serves a distinct scan on it)."""
    split = [p.split('.') for p in paths]
    for doc in documents:
        for parts in split:
            cur = doc
            for p in parts:
                if isinstance(cur, list):
                    return True
                if not isinstance(cur, dict):
                    break
                cur = cur.get(p, _MISSING)
            if isinstance(cur, list):
                return True
    return False


def _sort_given(sort, index, points):
    """Whether the index gives the sort, which starts with field once the
    equality-bound fields are set aside."""
    want = [(f, d) for f, d in sort if f not in points]
    have = [(f, d) for f, d in index.fields if f not in points]
    if not want or len(want) > len(have):
        return False
    signs = set()
    for (f, d), (g, e) in zip(want, have):
        if f != g or not isinstance(d, (int, float)) or \
                not isinstance(e, (int, float)) or isinstance(d, bool):
            return False
        signs.add((d > 0) == (e > 0))
    return len(signs) == 1


def plan(pipeline, indexes, documents):
    """The distinct scan mongod makes of the pipeline, or None."""
    stages = list(pipeline)
    match, sort = {}, None
    if stages and list(stages[0]) == ['$match']:
        match = stages.pop(0)['$match']
    if stages and list(stages[0]) == ['$sort']:
        sort = stages.pop(0)['$sort']
    if not stages or list(stages[0]) != ['$group'] or \
            not isinstance(match, dict):
        return None
    group = stages.pop(0)['$group']
    if not isinstance(group, dict):
        return None
    field = _field_path(group.get('_id'))
    if field is None:
        return None
    firsts = {}
    for out, acc in group.items():
        if out == '_id':
            continue
        if not isinstance(acc, dict) or list(acc) != ['$first'] or \
                _field_path(acc['$first']) is None:
            return None
        firsts[out] = _field_path(acc['$first'])
    if sort is not None:
        if not isinstance(sort, dict) or not sort:
            return None
        sort = list(sort.items())
    elif firsts:
        return None
    for key, cond in match.items():
        if not isinstance(key, str) or key[:1] == '$' or not _exact(cond):
            return None
    points = {k for k, c in match.items() if _point(c) is not _MISSING}
    for index in indexes:
        if index.partial is not None or index.sparse:
            continue
        names = [f for f, _ in index.fields]
        if field not in names or not set(match) <= set(names):
            continue
        at = names.index(field)
        if any(n not in points for n in names[:at]):
            continue
        # every field before the group's is bound to a point, so a sort
        # the index gives starts with the group's field
        if sort is not None and not _sort_given(sort, index, points):
            continue
        if _multikey(documents, names):
            continue
        p = Plan()
        p.index = index
        p.field = field
        p.firsts = firsts
        p.match = match
        p.prefix = {n: match[n] for n in names[:at]}
        p.sort = dict(sort) if sort is not None else {field: 1}
        p.rest = stages
        p.covered = all(f in names for f in firsts.values())
        return p
    return None


def _value(doc, path):
    cur = doc
    for p in path.split('.'):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p, _MISSING)
        if cur is _MISSING:
            return None
    return cur


def run(p, documents, database, op, hkey, compile_filter):
    """The pipeline's result by the distinct scan p over documents (the
    collection's, live), charged to op; hkey makes a value hashable as
    BSON equality has it, compile_filter(spec) gives a fast predicate or
    None (engine.py's)."""
    def predicate(spec):
        if not spec:
            return None
        return compile_filter(spec) or (
            lambda d: filter_applies(spec, d))

    op.plan = p.summary()
    in_prefix = predicate(p.prefix)
    if in_prefix is not None:
        documents = [d for d in documents if in_prefix(d)]
    values = {hkey(_value(d, p.field)) for d in documents}
    applies = predicate(p.match)
    matched = [d for d in documents if applies is None or applies(d)]
    groups = set()
    firsts = []
    for d in mongomock.aggregate.process_pipeline(
            matched, database, [{'$sort': p.sort}], None):
        key = hkey(_value(d, p.field))
        if key not in groups:
            groups.add(key)
            firsts.append(d)
    result = []
    for d in firsts:
        out = {'_id': copy.deepcopy(_value(d, p.field))}
        for name, path in p.firsts.items():
            out[name] = copy.deepcopy(_value(d, path))
        result.append(out)
    op.examine(keys=2 * len(values) + 1,
               docs=0 if p.covered else len(result))
    if p.rest:
        result = list(mongomock.aggregate.process_pipeline(
            result, database, p.rest, None))
    return result
