"""Which index a query can use, by MongoDB's prefix rules: a pure decision.

plan(filter, sort, indexes) answers as mongod's planner does in the cases
the service meets: an index is usable when the query constrains its first
field with a predicate an index can bound (equality, $in, ranges, $exists,
$ne, $nin, $type, $regex, $elemMatch, $all, $mod); the bounds go on over the
following fields while each is an equality or $in, and stop after the first
range. A partial index is usable only when the query implies its filter,
checked for the simple shapes (an equality, {$exists: true}, {$type} met
by every value of an equality or $in, or the same condition written in the
query); a sparse index only when the query cannot match a missing leading
field. A top-level $or is indexed when every
branch is (each branch with the predicates beside the $or, as mongod's
contained-$or pushdown does), and that plan is taken over one for the
predicates beside the $or when each branch binds more equalities. A query with no
predicate at all scans the collection and is never refused (mongod exempts
empty queries from notablescan); one with predicates but no usable index is
refusable, which a server under notablescan does with code 291. Among
several usable indexes the one binding most equalities wins (then most
fields, then a unique one, then the shorter key): mongod races candidates instead, so a real server may
pick better but never needs a scan where this finds an index.
"""

import datetime
import operator

NO_PLAN_MESSAGE = "No indexed plans available, and running with 'notablescan'"

# The collections of the service (and of the CRM around it) that the
# development server guards under notablescan.
SERVICE_COLLECTIONS = frozenset([
    'queues', 'csv_imports', 'csv_import_errors', 'import_events', 'deals',
    'pipeline_stages', 'deal_import_changes', 'csv_import_lines',
])

_POINT_OPS = frozenset(['$eq', '$in'])
_BOUNDING_OPS = frozenset([
    '$eq', '$in', '$gt', '$gte', '$lt', '$lte', '$exists', '$ne', '$nin',
    '$type', '$regex', '$elemMatch', '$all', '$mod',
])
_NOT_NULL_OPS = frozenset(['$gt', '$gte', '$lt', '$lte', '$type', '$regex',
                           '$elemMatch', '$all', '$mod'])


class NoPlan(Exception):
    """A query that needs a collection scan, refused (code 291); ns and
    filter say which, for the server's log."""

    def __init__(self, ns='', filt=None):
        super().__init__(NO_PLAN_MESSAGE)
        self.ns = ns
        self.filter = filt


class Index:
    """What the planner knows of one index."""

    __slots__ = ('name', 'fields', 'partial', 'sparse', 'unique')

    def __init__(self, name, key_items, partial=None, sparse=False,
                 unique=False):
        self.name = name
        self.fields = [(f, d) for f, d in key_items]
        self.partial = partial
        self.sparse = sparse
        self.unique = unique

    def describe(self):
        return '{ %s }' % ', '.join('%s: %s' % (f, d) for f, d in self.fields)


class Scan:
    """One index scan: the index and the predicates that bound it."""

    __slots__ = ('index', 'bounds', 'covers')

    def __init__(self, index, bounds, covers):
        self.index = index
        self.bounds = bounds      # {field: condition}, empty: all keys
        self.covers = covers      # every predicate is on the index's keys


class Plan:
    """COLLSCAN (scans empty), or one IXSCAN, or an OR of IXSCANs."""

    __slots__ = ('scans', 'refusable')

    def __init__(self, scans, refusable=False):
        self.scans = scans
        self.refusable = refusable

    @property
    def collscan(self):
        return not self.scans

    def summary(self):
        if not self.scans:
            return 'COLLSCAN'
        parts = ['IXSCAN %s' % s.index.describe() for s in self.scans]
        return parts[0] if len(parts) == 1 else 'OR(%s)' % ', '.join(parts)


def _is_operator_doc(v):
    return isinstance(v, dict) and v and all(
        isinstance(k, str) and k[:1] == '$' for k in v)


def _bounding(cond):
    """(can bound an index, is a point) for one field's condition."""
    if not _is_operator_doc(cond):
        return True, True
    ops = set(cond) - {'$options'}
    if not ops & _BOUNDING_OPS:
        return False, False
    return True, bool(ops) and ops <= _POINT_OPS


def _matches_missing(cond):
    """Whether the condition can match a document without the field."""
    if not _is_operator_doc(cond):
        return cond is None
    if cond.get('$exists') is True or any(op in cond for op in
                                          _NOT_NULL_OPS):
        return False
    if '$eq' in cond:
        return cond['$eq'] is None
    if '$in' in cond and isinstance(cond['$in'], list):
        return any(v is None for v in cond['$in'])
    return True


def _split(filt):
    """({field: condition} of the top-level conjunction, [$or branches])."""
    fields = {}
    ors = None
    for key, cond in filt.items():
        if key == '$and' and isinstance(cond, list):
            for sub in cond:
                if isinstance(sub, dict):
                    f, o = _split(sub)
                    for k, v in f.items():
                        fields.setdefault(k, v)
                    if o is not None and ors is None:
                        ors = o
        elif key == '$or' and isinstance(cond, list):
            if ors is None:
                ors = [b for b in cond if isinstance(b, dict)]
        elif isinstance(key, str) and key[:1] != '$':
            fields[key] = cond
    return fields, ors


def _implies(fields, partial):
    """Whether the query's predicates imply the partial filter."""
    pf, pors = _split(partial)
    if pors:
        return False
    for field, want in pf.items():
        got = fields.get(field, _MISSING)
        if got is _MISSING:
            return False
        if type(got) is type(want) and got == want:
            continue
        if not _is_operator_doc(want):
            if _only(got, want):
                continue
            return False
        if all(_implies_op(got, op, arg) for op, arg in want.items()):
            continue
        return False
    return True


def _implies_op(got, op, arg):
    """Whether a query's condition implies one operator of a partial
    filter's condition on the same field: {$exists: true} (the condition
    cannot match a missing field), {$type} (every value it can match is
    of the type), a range ($gt, $gte, $lt, $lte: every value it can match
    compares so with the bound, in the bound's type bracket, as mongod's
    planner proves an equality or each value of an $in a subset of a
    comparison), or {$eq} of the one value it can match."""
    if op == '$exists':
        return arg is True and not _matches_missing(got)
    if op == '$type':
        return _of_types(got, arg)
    if op == '$eq':
        return _only(got, arg)
    if op in _RANGES:
        return _within(got, _RANGES[op], arg)
    return False


def _values(got):
    """The values a condition can match among, when it names them (a plain
    value, {$eq: value}, {$in: [values]}); None otherwise."""
    if not _is_operator_doc(got):
        return [got]
    if list(got) == ['$eq']:
        return [got['$eq']]
    if list(got) == ['$in'] and isinstance(got['$in'], list):
        return got['$in']
    return None


def _only(got, want):
    """Whether the only value a condition can match is want, of want's
    type (Python's 1 == True is no BSON equality)."""
    values = _values(got)
    return values is not None and len(values) == 1 and \
        type(values[0]) is type(want) and values[0] == want


_RANGES = {'$gt': operator.gt, '$gte': operator.ge, '$lt': operator.lt,
           '$lte': operator.le}
# Type brackets: values of one bracket compare with each other, and a
# range matches values of its bound's bracket only.
_BRACKETS = {1: 'number', 16: 'number', 18: 'number', 2: 'string',
             7: 'objectId', 8: 'bool', 9: 'date'}


def _within(got, compare, bound):
    values = _values(got)
    want = _BRACKETS.get(_type_code(bound))
    if values is None or want is None:
        return False
    for v in values:
        if isinstance(v, (dict, list)) or \
                _BRACKETS.get(_type_code(v)) != want:
            return False
        try:
            if not compare(v, bound):
                return False
        except TypeError:  # datetimes with and without a zone
            return False
    return True


# $type's aliases and numbers of the values a query holds.
_TYPE_CODES = {'double': 1, 'string': 2, 'object': 3, 'array': 4,
               'objectId': 7, 'bool': 8, 'date': 9, 'null': 10, 'int': 16,
               'long': 18, 'decimal': 19}


def _type_code(v):
    """The BSON type number of a plain value, or None."""
    if v is None:
        return 10
    if isinstance(v, bool):
        return 8
    if isinstance(v, str):
        return 2
    if isinstance(v, float):
        return 1
    if isinstance(v, int):
        return 18 if type(v).__name__ == 'Int64' or \
            not -2**31 <= v < 2**31 else 16
    if isinstance(v, datetime.datetime):
        return 9
    if type(v).__name__ == 'ObjectId':
        return 7
    return None


def _of_types(got, types):
    """Whether a condition only matches values of the given $type (an
    alias, a number or a list of them): a plain value, {$eq: value} or
    {$in: [values]}, each of such a type, as mongod's planner proves a
    partial filter {$type} implied. 'number' stands for the four numeric
    types."""
    want = set()
    for t in types if isinstance(types, list) else [types]:
        if t == 'number':
            want.update((1, 16, 18, 19))
        elif isinstance(t, str):
            want.add(_TYPE_CODES.get(t))
        elif isinstance(t, (int, float)) and not isinstance(t, bool):
            want.add(int(t))
    values = _values(got)
    if values is None:
        return False
    return all(not isinstance(v, (dict, list)) and _type_code(v) in want
               for v in values)


_MISSING = object()


def _scan_for(index, fields):
    """The scan the index offers for these predicates, or None."""
    if index.partial is not None and not _implies(fields, index.partial):
        return None
    lead = index.fields[0][0]
    if lead not in fields:
        return None
    ok, _ = _bounding(fields[lead])
    if not ok:
        return None
    if index.sparse and _matches_missing(fields[lead]):
        return None
    bounds = {}
    for field, _ in index.fields:
        if field not in fields:
            break
        ok, point = _bounding(fields[field])
        if not ok:
            break
        bounds[field] = fields[field]
        if not point:
            break
    keys = {f for f, _ in index.fields}
    return Scan(index, bounds, all(f in keys for f in fields))


def _points(scan):
    return sum(1 for cond in scan.bounds.values() if _bounding(cond)[1])


def _rank(scan):
    """Equalities first ($nin or $ne bound an index but select little),
    then bounded fields, then a unique index, then a short key."""
    return (_points(scan), len(scan.bounds), scan.index.unique,
            -len(scan.index.fields))


def _best(indexes, fields):
    best = None
    for index in indexes:
        scan = _scan_for(index, fields)
        if scan is not None and (best is None or _rank(scan) > _rank(best)):
            best = scan
    return best


def _sort_scan(indexes, sort):
    """A full scan of an index whose prefix gives the sort, or None."""
    if not sort:
        return None
    want = [(k, d) for k, d in sort if k != '$natural']
    if not want:
        return None
    for index in indexes:
        if index.partial is not None or index.sparse:
            continue
        head = index.fields[:len(want)]
        if len(head) < len(want) or any(f != k for (f, _), (k, _) in
                                        zip(head, want)):
            continue
        signs = {(1 if d > 0 else -1) * (1 if isinstance(idir, (int, float))
                                         and idir > 0 else -1)
                 for (_, idir), (_, d) in zip(head, want)}
        if len(signs) == 1:
            return Scan(index, {}, False)
    return None


def plan(filt, sort, indexes):
    """The plan for a query (filter dict, sort as [(field, direction)] or
    None) over the collection's indexes (the _id index included)."""
    filt = filt if isinstance(filt, dict) else {}
    fields, ors = _split(filt)
    top = _best(indexes, fields) if fields else None
    if ors:
        # Each branch with the predicates beside the $or, as mongod pushes
        # them down into a contained $or: taken when every branch binds
        # more equalities than the predicates beside it alone.
        scans = []
        for branch in ors:
            bf, bors = _split(branch)
            merged = dict(fields)
            merged.update(bf)
            scan = None if bors else _best(indexes, merged)
            if scan is None or (top is not None and
                                _points(scan) <= _points(top)):
                scans = None
                break
            scan.covers = False
            scans.append(scan)
        if scans:
            return Plan(scans)
    if top is not None:
        return Plan([top])
    scan = _sort_scan(indexes, sort)
    if scan is not None:
        return Plan([scan])
    return Plan([], refusable=bool(filt))
