"""Storage engine of the development server: mongomock plus hashed indexes.

mongomock 4.1.2 evaluates filters, updates, projections, sorts and
aggregation pipelines; this module owns what it does too slowly or not at
all: inserts, deletes and unique indexes. Each unique index is a dict from
key tuple to document id, so a write checks its keys in constant time instead
of scanning the collection, and equality filters on _id or on every field of
a unique index look their document up instead of scanning. Duplicate keys
raise DupKeyError carrying the real server's message, keyPattern and keyValue.
An operator update of plain paths is applied to a copy of what it touches
(docupdate.py), checked, then put in place; each document keeps a bound of
its BSON size so such an update is measured only near 16 MiB.
All of it runs under the caller's single lock: nothing here is thread-safe.
"""

import copy
import datetime
import itertools
import json

import bson
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex

import mongomock
import mongomock.aggregate
import mongomock.collection
import mongomock.helpers
from mongomock.filtering import filter_applies

import bsonenc
import cost
import distinct
import docupdate
import planner
import projection

_MISSING = object()
_EMPTY_ARRAY = ('\x00empty-array',)

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


class DupKeyError(mongomock.DuplicateKeyError):
    """A write that would give two documents the same unique key."""

    def __init__(self, ns, name, pattern, values):
        self.key_pattern = dict(pattern)
        self.key_value = {f: v for (f, _), v in zip(pattern, values)}
        shown = ', '.join('%s: %s' % (f, format_value(v))
                          for (f, _), v in zip(pattern, values))
        msg = ('E11000 duplicate key error collection: %s index: %s '
               'dup key: { %s }' % (ns, name, shown))
        super().__init__(msg, 11000)

    def details(self):
        """The fields the server adds next to code and errmsg."""
        return {'keyPattern': self.key_pattern, 'keyValue': self.key_value}


class WriteFailure(mongomock.WriteError):
    """A document or update the server refuses, with its error code."""


class NonNumeric(WriteFailure):
    """$inc or $mul met a value that is not a number: the message needs the
    document's _id, which the updater does not know."""

    def __init__(self, op_name, field_name, value):
        self.op_name = op_name
        self.field_name = field_name
        self.type_name = bson_type_name(value)
        super().__init__(self.message(None), 14)

    def message(self, doc_id):
        return ("Cannot apply %s to a value of non-numeric type. {%s} has the "
                "field '%s' of non-numeric type %s" % (
                    self.op_name, 'no id' if doc_id is _MISSING or doc_id is
                    None else '_id: %s' % format_value(doc_id),
                    self.field_name, self.type_name))


MAX_USER_SIZE = 16 * 1024 * 1024


def bson_type_name(v):
    """The name mongod gives a value's BSON type in messages."""
    if isinstance(v, bool):
        return 'bool'
    if isinstance(v, Int64):
        return 'long'
    if isinstance(v, int):
        return 'int'
    if isinstance(v, float):
        return 'double'
    if isinstance(v, str):
        return 'string'
    if isinstance(v, dict):
        return 'object'
    if isinstance(v, list):
        return 'array'
    if v is None:
        return 'null'
    if isinstance(v, ObjectId):
        return 'objectId'
    if isinstance(v, datetime.datetime):
        return 'date'
    if isinstance(v, bytes):
        return 'binData'
    if isinstance(v, Regex):
        return 'regex'
    return type(v).__name__


def format_value(v):
    """Formats a value the way mongod prints it in a dup key message."""
    if v is None:
        return 'null'
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, ObjectId):
        return "ObjectId('%s')" % v
    if isinstance(v, datetime.datetime):
        return 'new Date(%d)' % _millis(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, dict):
        if not v:
            return '{}'
        return '{ %s }' % ', '.join('%s: %s' % (k, format_value(x))
                                    for k, x in v.items())
    if isinstance(v, list):
        if not v:
            return '[]'
        return '[ %s ]' % ', '.join(format_value(x) for x in v)
    return repr(v)


def _millis(dt):
    if dt.tzinfo is not None:
        dt = dt.replace(tzinfo=None) - dt.utcoffset()
    delta = dt - datetime.datetime(1970, 1, 1)
    return (delta.days * 86400 + delta.seconds) * 1000 + \
        delta.microseconds // 1000


def _hkey(v):
    """A hashable stand-in for a BSON value, equal where MongoDB's is.
    ObjectIds become their 12 bytes: hashing those is C, not Python."""
    t = type(v)
    if t is ObjectId:
        return v._ObjectId__id
    if t is str or t is int or t is float or t is Int64 or \
            t is datetime.datetime:
        return v
    if t is bool:
        return ('\x00bool', v)
    if v is None:
        return None
    if isinstance(v, ObjectId):
        return v.binary
    if isinstance(v, bytes):
        return ('\x00bin', getattr(v, 'subtype', 0), bytes(v))
    if isinstance(v, dict):
        return ('\x00doc',) + tuple((k, _hkey(x)) for k, x in v.items())
    if isinstance(v, list):
        return ('\x00array',) + tuple(_hkey(x) for x in v)
    try:
        hash(v)
        return v
    except TypeError:
        return ('\x00bson', bson.encode({'v': v}))


def store_key(doc_id):
    """The key mongomock's store files a document under."""
    if isinstance(doc_id, dict):
        return mongomock.helpers.hashdict(doc_id)
    return doc_id


def _path_values(doc, parts):
    """Values a dotted path reaches, arrays expanded; ([None], False) if
    the path reaches nothing."""
    cur = doc
    for i, p in enumerate(parts):
        if type(cur) is dict:
            cur = cur.get(p, _MISSING)
            if cur is _MISSING:
                return [None], False
        else:
            return _path_values_slow([cur], parts[i:])
    if isinstance(cur, list):
        return (list(cur) if cur else [_EMPTY_ARRAY]), True
    return [cur], True


def _path_values_slow(values, parts):
    for p in parts:
        nxt = []
        for v in values:
            if isinstance(v, dict):
                if p in v:
                    nxt.append(v[p])
            elif isinstance(v, list):
                if p.isdigit() and int(p) < len(v):
                    nxt.append(v[int(p)])
                else:
                    nxt.extend(e[p] for e in v
                               if isinstance(e, dict) and p in e)
        values = nxt
    if not values:
        return [None], False
    out = []
    for v in values:
        if isinstance(v, list):
            out.extend(v if v else [_EMPTY_ARRAY])
        else:
            out.append(v)
    return out, True


_FALLBACK = object()
# The container that asks DevCollection._copy_only_fields for BSON bytes.
ENCODED = object()


def _walk(doc, parts):
    """The value at a dotted path with no array on the way: the value,
    _MISSING, or _FALLBACK where an array asks for mongomock's rules."""
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            return _FALLBACK
        if not isinstance(cur, dict):
            return _MISSING
        cur = cur.get(p, _MISSING)
        if cur is _MISSING:
            return _MISSING
    return _FALLBACK if isinstance(cur, list) else cur


# Types no value of which equals a string or an ObjectId, in BSON or in
# Python: a document's value of one of them is outside any $in of those.
_NEVER_STR_OR_OID = frozenset([dict, int, float, bool, type(None), Int64,
                               datetime.datetime, bytes])
# The numbers whose BSON equality is Python's (int32, int64, double; not
# Decimal128), and the types no value of which equals one of them in BSON
# or in Python (a bool is left to the generic code, whose answer stands).
_NUMBERS = frozenset([int, float, Int64])
_NEVER_NUMBER = frozenset([str, ObjectId, dict, type(None),
                           datetime.datetime, bytes])


_NOT_ARRAY = {'$type': 'array'}


def compile_filter(spec):
    """A fast predicate for the filters the service's hot paths send, or
    None: equality of dotted paths with strings, ObjectIds or numbers other
    than NaN (where BSON's equality is Python's: an update's filter names
    the values it replaces, as {$eq: v, $not: {$type: 'array'}}: the same
    test, arrays being mongomock's), {path: {$exists: bool}}, and {path: {$in: [...]}}
    of strings and ObjectIds only (a set lookup where mongomock walks the
    list for each document). A document with an array on a path, or with a
    value of a type not known to differ from every string and ObjectId, is
    judged by mongomock's filter_applies, so the answer is always that of
    the generic code."""
    if not isinstance(spec, dict) or not spec:
        return None
    for key, want in spec.items():
        t = type(want)
        if (t is not str and t is not ObjectId) or type(key) is not str or \
                '.' in key or key[:1] == '$':
            break
    else:
        return _top_equalities(spec)
    tests = []
    for key, want in spec.items():
        if not isinstance(key, str) or key[:1] == '$':
            return None
        parts = key.split('.')
        if (isinstance(want, dict) and len(want) == 2 and
                '$eq' in want and want.get('$not') == _NOT_ARRAY):
            # an update's compare-and-set: the equality, and no array
            # (an array on the path is left to filter_applies below)
            want = want['$eq']
            if type(want) is dict or type(want) is list:
                return None
        if type(want) is str or type(want) is ObjectId:
            tests.append((parts, 0, want))
        elif type(want) in _NUMBERS and want == want:
            tests.append((parts, 3, want))
        elif (isinstance(want, dict) and len(want) == 1 and
              type(want.get('$exists')) is bool):
            tests.append((parts, 1, want['$exists']))
        elif (isinstance(want, dict) and len(want) == 1 and
              type(want.get('$in')) is list and
              all(type(x) is str or type(x) is ObjectId
                  for x in want['$in'])):
            tests.append((parts, 2, frozenset(want['$in'])))
        else:
            return None

    def applies(doc):
        for parts, kind, want in tests:
            got = _walk(doc, parts)
            if got is _FALLBACK:
                return filter_applies(spec, doc)
            if kind == 0:
                if type(got) is not type(want) or got != want:
                    return False
            elif kind == 2:
                t = type(got)
                if t is str or t is ObjectId:
                    if got not in want:
                        return False
                elif got is _MISSING or t in _NEVER_STR_OR_OID:
                    return False
                else:
                    return filter_applies(spec, doc)
            elif kind == 3:
                t = type(got)
                if t in _NUMBERS:
                    if got != want:
                        return False
                elif got is _MISSING or t in _NEVER_NUMBER:
                    return False
                else:
                    return filter_applies(spec, doc)
            elif (got is not _MISSING) != want:
                return False
        return True
    return applies


def _top_equalities(spec):
    """compile_filter of equalities of top-level fields with strings or
    ObjectIds: _walk's answer for a path of one part."""
    items = tuple(spec.items())

    def applies(doc):
        for key, want in items:
            got = doc.get(key, _MISSING)
            if type(got) is not type(want):
                if isinstance(got, list):
                    return filter_applies(spec, doc)
                return False
            if got != want:
                return False
        return True
    return applies


class UniqueIndex:
    """One unique index: hashed key -> store key of its document, and
    hashed document id -> the keys it holds (to undo them on change)."""

    def __init__(self, name, pattern, sparse=False, partial=None):
        self.name = name
        self.pattern = list(pattern)
        self.fields = [f for f, _ in self.pattern]
        self.paths = [f.split('.') for f in self.fields]
        self.sparse = sparse
        self.partial = partial
        self.simple = not sparse
        self.applies = None
        if partial is not None:
            self.applies = compile_filter(partial) or (
                lambda doc: filter_applies(partial, doc))
        self.owner = {}
        self.keys_by_id = {}
        # Every path the keys depend on (the key's fields, the partial
        # filter's), or None when the filter is not one this reads.
        self.watched = _filter_paths(partial, [p[:] for p in self.paths])
        self.heads = frozenset(w[0] for w in self.watched or ())

    def touched_by(self, update, heads):
        """Whether an operator update may change the document's keys: a
        path it names is a prefix of a watched path or the reverse (a
        watched path's container or part of its value). heads: the first
        parts of its paths."""
        if self.watched is None:
            return True
        if heads.isdisjoint(self.heads):
            return False
        heads = self.heads
        for fields in update.values():
            for path in fields:
                if path.partition('.')[0] in heads and \
                        self._touches(path.split('.')):
                    return True
        return False

    def _touches(self, p):
        for w in self.watched:
            n = min(len(p), len(w))
            if p[:n] == w[:n]:
                return True
        return False

    def entries(self, doc):
        """[(hashed key, raw values)] the document files under."""
        if self.applies is not None and not self.applies(doc):
            return ()
        per_field = []
        present = False
        single = True
        for path in self.paths:
            values, found = _path_values(doc, path)
            present = present or found
            single = single and len(values) == 1
            per_field.append(values)
        if self.sparse and not present:
            return ()
        if single:
            raw = tuple(v[0] for v in per_field)
            return ((tuple(map(_hkey, raw)), raw),)
        return tuple((tuple(map(_hkey, combo)), combo)
                     for combo in itertools.product(*per_field))

    def keys(self, doc):
        """The hashed keys the document files under: entries() without
        the raw values, with a fast path for documents without arrays."""
        if not self.simple:
            return tuple(hk for hk, _ in self.entries(doc))
        if self.applies is not None and not self.applies(doc):
            return ()
        key = []
        for parts in self.paths:
            cur = doc
            for p in parts:
                t = type(cur)
                if t is dict:
                    cur = cur.get(p)
                elif t is list or isinstance(cur, list):
                    return tuple(hk for hk, _ in self.entries(doc))
                elif isinstance(cur, dict):  # mongomock's OrderedDicts
                    cur = cur.get(p)
                else:
                    cur = None
                    break
            if isinstance(cur, list):
                return tuple(hk for hk, _ in self.entries(doc))
            key.append(_hkey(cur))
        return (tuple(key),)

    def dup_error(self, ns, doc, key):
        for hk, raw in self.entries(doc):
            if hk == key:
                return DupKeyError(ns, self.name, self.pattern, _shown(raw))
        return DupKeyError(ns, self.name, self.pattern,
                           [None] * len(self.fields))

    def lookup(self, raw_values):
        """Store key of the document with exactly these key values."""
        return self.owner.get(tuple(map(_hkey, raw_values)), _MISSING)

    def add(self, idk, skey, keys):
        """Files a document that holds no key yet."""
        if keys:
            owner = self.owner
            for k in keys:
                owner[k] = skey
            self.keys_by_id[idk] = keys

    def replace(self, idk, skey, keys):
        self.remove(idk)
        self.add(idk, skey, keys)

    def remove(self, idk):
        owner = self.owner
        for k in self.keys_by_id.pop(idk, ()):
            owner.pop(k, None)


def _check_updated_size(doc):
    """Refuses an updated document over 16 MiB (code 17419); encodes it
    only when docupdate.size_bound cannot place it under. Returns what
    its size is known not to exceed."""
    bound = docupdate.size_bound(doc)
    if bound <= MAX_USER_SIZE:
        return bound
    bound = len(bsonenc.encode(doc))
    if bound > MAX_USER_SIZE:
        raise WriteFailure('Resulting document after update is larger '
                           'than %d' % MAX_USER_SIZE, 17419)
    return bound


def _filter_paths(spec, out):
    """out plus the paths a partial filter looks at; None for a filter
    whose paths this does not read."""
    if spec is None:
        return out
    if not isinstance(spec, dict):
        return None
    for k, v in spec.items():
        if not isinstance(k, str):
            return None
        if k in ('$and', '$or', '$nor'):
            if not isinstance(v, list):
                return None
            for sub in v:
                if _filter_paths(sub, out) is None:
                    return None
        elif k[:1] == '$':
            return None
        else:
            out.append(k.split('.'))
    return out


def _shown(raw):
    return tuple(None if v is _EMPTY_ARRAY else v for v in raw)


def _plain_scalar(v):
    t = type(v)
    return t is str or t is ObjectId or t is int or t is Int64 or \
        t is float or t is datetime.datetime


def check_conflicts(update):
    """mongod refuses an update whose operators name one path twice, or a
    path and one of its prefixes ({$set: {a: 1}, $inc: {a: 1}}, {$set:
    {'a.b': 1}, $unset: {a: ''}}), with ConflictingUpdateOperators (40),
    before it looks at any document; mongomock would apply both."""
    if not isinstance(update, dict) or not update or \
            not all(isinstance(k, str) and k.startswith('$') for k in update):
        return
    heads = [str(path).split('.', 1)[0] for op in update.values()
             if isinstance(op, dict) for path in op]
    if len(set(heads)) == len(heads):
        return  # paths that share no first part cannot conflict
    seen = []
    for op in update.values():
        if not isinstance(op, dict):
            continue
        for path in op:
            parts = str(path).split('.')
            for other in seen:
                n = min(len(parts), len(other))
                if parts[:n] == other[:n]:
                    raise WriteFailure(
                        "Updating the path '%s' would create a conflict at "
                        "'%s'" % (path, '.'.join(parts[:n])), 40)
            seen.append(parts)


class DevCollection(mongomock.collection.Collection):
    """A mongomock collection whose writes and unique checks are ours."""

    def __init__(self, database, name, ns, engine):
        super().__init__(database, name, _db_store=database._store)
        self.ns = ns
        self.engine = engine
        self.uniques = []
        self.catalog = {}
        # changehistory.History, told of every write (replica-set mode only).
        self.history = None
        # store key -> what the document's BSON size cannot exceed, kept
        # by the writes that know it (docupdate.growth_bound); a document
        # without one is measured when an update must know.
        self.bounds = {}
        # Store keys of documents an update changed without refiling their
        # index keys (a result equal by Python's equality, _take_equal, as
        # mongomock left it): their next change refiles every index, as
        # mongomock's did.
        self.stale = set()

    # -- storage --------------------------------------------------------

    @property
    def documents(self):
        """The live id -> document map (not copies)."""
        return self._store._documents

    def dev_insert(self, doc, check_size=False, upsert=False, bound=None):
        """Stores one document, _id first; returns it. Raises DupKeyError
        or WriteFailure and then stores nothing. check_size: the document
        may be over 16 MiB (its command was), so measure it. bound: what
        its BSON size (with an _id added) cannot exceed, if known (the
        size of the request it came in), kept for its updates."""
        if check_size or upsert:
            size = len(bson.encode(doc))
            if size > MAX_USER_SIZE and upsert:
                raise WriteFailure('Document to upsert is larger than %d'
                                   % MAX_USER_SIZE, 17420)
            if size > MAX_USER_SIZE:
                raise WriteFailure('object to insert too large. size in '
                                   'bytes: %d, max size: %d'
                                   % (size, MAX_USER_SIZE), 2)
        if '_id' not in doc:
            doc = {'_id': ObjectId(), **doc}
        elif next(iter(doc)) != '_id':
            doc = {'_id': doc['_id'],
                   **{k: v for k, v in doc.items() if k != '_id'}}
        if '$' in ''.join(doc):
            for k in doc:
                if k[:1] == '$':
                    raise WriteFailure("Document can't have $ prefixed field "
                                       "names: %s" % k, 2)
        doc_id = doc['_id']
        if type(doc_id) is not ObjectId:
            if isinstance(doc_id, (list, Regex)):
                raise WriteFailure("The '_id' value cannot be of type %s" % (
                    'array' if isinstance(doc_id, list) else 'regex'), 2)
            skey = store_key(doc_id)
        else:
            skey = doc_id
        docs = self._store._documents
        if skey in docs:
            raise DupKeyError(self.ns, '_id_', [('_id', 1)], [doc_id])
        if self.uniques:
            plan = self._unique_keys(doc, skey)
            idk = _hkey(doc_id)
            for ix, keys in zip(self.uniques, plan):
                ix.add(idk, skey, keys)
        docs[skey] = doc
        if check_size or upsert:
            bound = size + 17  # an _id added: type, name, ObjectId
        if bound is not None:
            self.bounds[skey] = bound
        if self.history is not None:
            self.history.inserted(self, doc)
        self.engine.op.wrote()
        return doc

    def _unique_keys(self, doc, skey, update=None):
        """Checks every unique index; the keys to file, index by index.
        update (an operator update of plain paths): an index it does not
        touch keeps the keys it holds, unchecked, and its entry is None."""
        plan = []
        heads = None if update is None else {
            path.partition('.')[0] for fields in update.values()
            for path in fields}
        for ix in self.uniques:
            if update is not None and not ix.touched_by(update, heads):
                plan.append(None)
                continue
            keys = ix.keys(doc)
            get = ix.owner.get
            for k in keys:
                owner = get(k, _MISSING)
                if owner is not _MISSING and owner != skey:
                    raise ix.dup_error(self.ns, doc, k)
            plan.append(keys)
        return plan

    def remove_document(self, doc):
        doc_id = doc['_id']
        skey = store_key(doc_id)
        del self._store._documents[skey]
        self.bounds.pop(skey, None)
        self.stale.discard(skey)
        idk = _hkey(doc_id)
        for ix in self.uniques:
            ix.remove(idk)
        if self.history is not None:
            self.history.deleted(self, doc_id)
        self.engine.op.wrote()

    def dev_delete(self, spec, limit):
        """Deletes matching documents (all when limit is 0); returns n."""
        n = 0
        for doc in list(self._iter_documents(spec)):
            self.remove_document(doc)
            n += 1
            if limit and n >= limit:
                break
        return n

    def dev_find_first(self, spec, sort):
        """The live first document matching spec in sort order, or None."""
        docs = self._iter_documents(spec)
        if sort:
            for key, direction in reversed(sort):
                if key == '$natural':
                    if direction < 0:
                        docs = reversed(list(docs))
                    continue
                docs = sorted(docs, reverse=direction < 0,
                              key=lambda d, k=key:
                              mongomock.filtering.resolve_sort_key(k, d))
        for doc in docs:
            return doc
        return None

    def clear(self):
        self._store.drop()
        self.bounds = {}
        self.stale = set()
        self.uniques = []
        self.catalog = {}

    # -- indexes --------------------------------------------------------

    def add_unique_index(self, name, pattern, sparse, partial):
        """Builds a unique index over the current documents; DupKeyError
        (and no index) if two already share a key."""
        ix = UniqueIndex(name, pattern, sparse, partial)
        owner = ix.owner
        for skey, doc in self._store._documents.items():
            keys = ix.keys(doc)
            for k in keys:
                other = owner.get(k, _MISSING)
                if other is not _MISSING and other != skey:
                    raise ix.dup_error(self.ns, doc, k)
            ix.add(_hkey(doc['_id']), skey, keys)
        self.uniques.append(ix)

    def drop_unique_index(self, name):
        self.uniques = [ix for ix in self.uniques if ix.name != name]

    # -- mongomock hooks ------------------------------------------------

    def _insert(self, data, session=None, ordered=True):
        # mongomock calls this for upserts.
        return self.dev_insert(data, upsert=True)['_id']

    def _ensure_uniques(self, new_data):
        # mongomock calls this after modifying a stored document in place;
        # _update below puts the document back if this raises.
        _check_updated_size(new_data)
        doc_id = new_data['_id']
        skey = store_key(doc_id)
        plan = self._unique_keys(new_data, skey)
        self.stale.discard(skey)
        idk = _hkey(doc_id)
        for ix, keys in zip(self.uniques, plan):
            ix.replace(idk, skey, keys)
        self.engine.op.wrote()

    def _update(self, spec, document, upsert=False, manipulate=False,
                multi=False, **kwargs):
        check_conflicts(document)
        history = self.history
        if (history is None or not history.watching(self.ns)) and \
                not upsert and not multi and not kwargs and \
                docupdate.eligible(document):
            # no stream to tell, and an update _update_copy applies
            return self._update_copy(spec, document)
        # mongomock updates documents in place: the change history needs
        # them before, to describe each change (a failed update, put back
        # below, describes none).
        before = history.before_update(self, spec, multi) if history else ()
        try:
            return self._atomic_update(spec, document, upsert=upsert,
                                       manipulate=manipulate, multi=multi,
                                       **kwargs)
        finally:
            if history is not None:
                history.after_update(self, before, document)

    def _atomic_update(self, spec, document, upsert=False, manipulate=False,
                       multi=False, **kwargs):
        """mongomock's update, made atomic per document as on mongod: the
        document being updated when anything fails (an operator that
        cannot apply, a result over 16 MiB, a duplicate key, the time
        limit) is put back as it was. Documents a multi-update finished
        before stay updated, as on mongod."""
        if not upsert and not multi and not kwargs and \
                docupdate.eligible(document):
            return self._update_copy(spec, document)  # watched: see _update
        current = []
        scan = self._iter_documents

        def tracked(filt):
            for doc in scan(filt):
                current[:] = [doc['_id'], copy.deepcopy(doc)]
                # mongomock may change it any way: its bound is unknown,
                # and its keys are refiled only if it compares changed
                skey = store_key(doc['_id'])
                self.bounds.pop(skey, None)
                if self.uniques:
                    self.stale.add(skey)
                yield doc
                current.clear()
        self._iter_documents = tracked
        try:
            return super()._update(spec, document, upsert=upsert,
                                   manipulate=manipulate, multi=multi,
                                   **kwargs)
        except Exception as exc:
            if current:
                self._store._documents[store_key(current[0])] = current[1]
            if isinstance(exc, NonNumeric):
                doc_id = current[0] if current else spec.get('_id', _MISSING)
                raise WriteFailure(exc.message(doc_id), 14) from None
            raise
        finally:
            del self._iter_documents

    def _update_copy(self, spec, document):
        """mongomock's _update for one document and an update
        docupdate.eligible accepts, applied field by field to a copy
        (docupdate.apply_field): the stored document changes only once
        the result passes every check (as a whole, in place), so a failure
        has nothing to put back. The size is checked by the document's
        bound plus the update's growth, measured only past 16 MiB; only
        the unique indexes the update touches are checked. The same
        matching, charges, results and errors as mongomock's."""
        patch = mongomock.helpers.patch_datetime_awareness_in_document
        if docupdate.needs_patch(spec):
            spec = patch(spec)
        if docupdate.needs_patch(document):
            document = patch(document)
        doc = self._first_match(spec)
        if doc is None:
            return self._update_result(0, 0)
        new, owned = docupdate.start(doc)
        updaters = mongomock.collection._updaters
        apply_field = docupdate.apply_field
        try:
            for op, fields in document.items():
                updater = updaters[op]
                for path, value in fields.items():
                    apply_field(new, owned, path, value, updater)
        except NonNumeric as exc:
            raise WriteFailure(exc.message(doc['_id']), 14) from None
        if new == doc:
            self._take_equal(doc, new, document)
            return self._update_result(1, 0)
        if doc.get('_id') != new.get('_id'):
            raise mongomock.WriteError(
                "After applying the update, the (immutable) field '_id' was "
                'found to have been altered to _id: {}'.format(new.get('_id')))
        doc_id = doc['_id']
        skey = store_key(doc_id)
        bound = self.bounds.get(skey)
        if bound is not None:
            bound += docupdate.growth_bound(document)
        if bound is None or bound > MAX_USER_SIZE:
            bound = _check_updated_size(new)
        plan = self._unique_keys(
            new, skey, None if skey in self.stale else document)
        if plan.count(None) == len(plan):
            self.engine.op.wrote()  # no key changes
        else:
            self._refile_and_charge(doc_id, skey, plan)
        doc.clear()
        doc.update(new)
        self.bounds[skey] = bound
        self.stale.discard(skey)
        return self._update_result(1, 1)

    def _take_equal(self, doc, new, document):
        """A result equal to the document by Python's equality (nothing,
        or 0 for -0.0, 1 for True, 2 for 2.0): mongomock, updating in
        place, left it in the document uncounted, unchecked, uncharged,
        its index keys as they were, and so does this (stale: the next
        change refiles them all). Its size bound grows by what the update
        may add."""
        if new is doc:
            return
        skey = store_key(doc['_id'])
        bound = self.bounds.pop(skey, None)
        doc.clear()
        doc.update(new)
        if self.uniques:
            self.stale.add(skey)
        if bound is not None:
            bound += docupdate.growth_bound(document)
            if bound <= MAX_USER_SIZE:
                self.bounds[skey] = bound

    def _refile_and_charge(self, doc_id, skey, plan):
        """Files the keys of plan (None: unchanged) under the document,
        then charges the write; a write out of time puts the keys back."""
        idk = _hkey(doc_id)
        held = [None if keys is None else ix.keys_by_id.get(idk, ())
                for ix, keys in zip(self.uniques, plan)]
        for ix, keys in zip(self.uniques, plan):
            if keys is not None:
                ix.replace(idk, skey, keys)
        try:
            self.engine.op.wrote()
        except BaseException:
            # out of time: the update is not applied, nor are its keys
            for ix, keys in zip(self.uniques, held):
                if keys is not None:
                    ix.replace(idk, skey, keys)
            raise

    def _update_result(self, matched, modified):
        return {'connectionId': self.database.client._id, 'err': None,
                'n': matched, 'nModified': modified, 'ok': 1,
                'upserted': None, 'updatedExisting': bool(matched)}

    def index_list(self):
        """The indexes as the planner sees them, _id's first."""
        out = [planner.Index('_id_', [('_id', 1)], unique=True)]
        for spec in self.catalog.values():
            out.append(planner.Index(spec['name'], spec['key'].items(),
                                     spec.get('partialFilterExpression'),
                                     bool(spec.get('sparse')),
                                     bool(spec.get('unique'))))
        return out

    def _iter_documents(self, filter):
        """The documents matching filter, live, as the current command's
        plan reaches them: it is charged per document or key examined,
        and refused (NoPlan) under notablescan where mongod would."""
        op = self.engine.op
        if filter is None:
            filter = {}
        applies = None
        if filter:
            applies = compile_filter(filter)
            if applies is None:
                def applies(d, spec=filter):
                    return filter_applies(spec, d)
        docs = self._candidates(filter)
        if docs is not None:
            self._charge_candidates(filter, docs)
            return (d for d in docs if applies(d))
        if not self._store._documents and filter:
            filter_applies(filter, {})  # still reject a bad filter
        p = planner.plan(filter, op.sort, self.index_list())
        if op.plan is None:
            op.plan = p.summary()
        if p.refusable and self.engine.notablescan and \
                self.name in planner.SERVICE_COLLECTIONS:
            raise planner.NoPlan(self.ns, filter)
        if not p.collscan:
            points = self._unique_points(p)
            if points is not None:
                return _pointscan(points, applies, op, p)
        docs = list(self._store._documents.values())
        if p.collscan:
            return _collscan(docs, applies, op)
        return _ixscan(docs, applies, op, p, filter)

    def _copy_only_fields(self, doc, fields, container):
        # container ENCODED (dev_find_encoded): the BSON of the copy
        # mongomock would make, without making it where it would copy the
        # whole document (the same bytes: a copy encodes as its original).
        if container is ENCODED:
            if fields is None:
                return bsonenc.encode(doc)
            kept = projection.view(doc, fields)
            if kept is not None:
                return bsonenc.encode(kept)
            return bsonenc.encode(
                super()._copy_only_fields(doc, fields, dict))
        return super()._copy_only_fields(doc, fields, container)

    def dev_find_encoded(self, spec, sort, projection):
        """mongomock's _get_dataset, each result as BSON bytes made when
        its copy would have been (as a cursor's batch reaches it)."""
        return self._get_dataset(spec, sort, projection, ENCODED)

    def dev_count(self, spec, fast=False):
        """How many documents match, without copying any. fast: the count
        command with no query, which mongod answers from the collection's
        size without a scan."""
        if not spec and fast:
            return len(self._store._documents)
        op = self.engine.op
        op.count_only = True
        try:
            return sum(1 for _ in self._iter_documents(spec))
        finally:
            op.count_only = False

    def _delete(self, filter, collation=None, hint=None, multi=False,
                session=None):
        n = self.dev_delete(filter or {}, 0 if multi else 1)
        return {'n': n, 'ok': 1.0, 'err': None}

    def _charge_candidates(self, spec, docs):
        """What reaching the few documents _candidates found costs: one
        key, each document fetched."""
        op = self.engine.op
        if op.plan is None:
            op.plan = 'IDHACK' if '_id' in spec else 'IXSCAN (unique)'
        op.examine(keys=1, docs=len(docs))

    def _first_match(self, spec):
        """The first document _iter_documents(spec) yields, or None,
        charged as it charges; the candidates' lane without a generator."""
        docs = self._candidates(spec) if spec else None
        if docs is None:
            for doc in self._iter_documents(spec):
                return doc
            return None
        applies = compile_filter(spec)
        if applies is None:
            def applies(d):
                return filter_applies(spec, d)
        self._charge_candidates(spec, docs)
        for doc in docs:
            if applies(doc):
                return doc
        return None

    def _candidates(self, spec):
        """The few documents an equality filter can match, or None."""
        if not spec or not isinstance(spec, dict):
            return None
        docs = self._store._documents
        if '_id' in spec:
            v = spec['_id']
            if _plain_scalar(v) or (isinstance(v, dict) and v and not any(
                    k[:1] == '$' for k in v)):
                doc = docs.get(store_key(v))
                return [doc] if doc is not None else []
        for ix in self.uniques:
            if ix.partial is not None:
                continue
            raw = []
            for f in ix.fields:
                v = spec.get(f, _MISSING)
                if not _plain_scalar(v):
                    break
                raw.append(v)
            else:
                owner = ix.lookup(raw)
                if owner is _MISSING:
                    return []
                return [docs[owner]]
        return None

    def _unique_points(self, p):
        """The documents a plan's one scan of a unique index reaches when
        its bounds are equalities or $in lists of plain values on every
        field of the index, and the number of keys sought; None otherwise
        (the scan then walks the documents). The planner has already
        checked that the query implies a partial index's filter, so every
        document the query can match holds its key."""
        if len(p.scans) != 1 or not p.scans[0].index.unique:
            return None
        scan = p.scans[0]
        fields = [f for f, _ in scan.index.fields]
        choices = []
        n = 1
        for f in fields:
            cond = scan.bounds.get(f, _MISSING)
            if _plain_scalar(cond):
                values = [cond]
            elif isinstance(cond, dict) and list(cond) == ['$eq'] and \
                    _plain_scalar(cond['$eq']):
                values = [cond['$eq']]
            elif isinstance(cond, dict) and list(cond) == ['$in'] and \
                    isinstance(cond['$in'], list) and \
                    all(_plain_scalar(x) for x in cond['$in']):
                values = cond['$in']
            else:
                return None
            choices.append(values)
            n *= len(values)
        if n > 100000:
            return None
        docs = self._store._documents
        if fields == ['_id']:
            def find(combo, hk):
                doc = docs.get(store_key(combo[0]))
                return _MISSING if doc is None else store_key(combo[0])
        else:
            ix = next((u for u in self.uniques
                       if u.name == scan.index.name), None)
            if ix is None:
                return None

            def find(combo, hk, get=ix.owner.get):
                return get(hk, _MISSING)  # ix.lookup, hashed once
        out, seen, keys = [], set(), set()
        for combo in itertools.product(*choices):
            hk = tuple(map(_hkey, combo))
            if hk in keys:
                continue
            keys.add(hk)
            owner = find(combo, hk)
            if owner is not _MISSING and owner not in seen:
                seen.add(owner)
                out.append(docs[owner])
        return out, len(keys)


def _collscan(docs, applies, op):
    for d in docs:
        op.examine(docs=1)
        if applies is None or applies(d):
            yield d


def _member(index):
    """Whether a document has a key in the index (partial, sparse)."""
    tests = []
    if index.partial is not None:
        tests.append(compile_filter(index.partial) or (
            lambda d, f=index.partial: filter_applies(f, d)))
    if index.sparse:
        paths = [f.split('.') for f, _ in index.fields]
        tests.append(lambda d: any(_path_values(d, p)[1] for p in paths))
    if not tests:
        return None
    return lambda d: all(t(d) for t in tests)


def _bounds_test(bounds):
    if not bounds:
        return None
    return compile_filter(bounds) or (
        lambda d, b=bounds: filter_applies(b, d))


def _pointscan(points, applies, op, p):
    """Yields the matches of a plan's point lookups in a unique index
    (Collection._unique_points): each key sought is charged, found or not,
    and each document fetched (none for a count the keys answer)."""
    found, keys = points
    fetch = 0 if op.count_only and p.scans[0].covers else 1
    op.examine(keys=keys, docs=0)
    for d in found:
        op.examine(docs=fetch)
        if applies is None or applies(d):
            yield d


def _ixscan(docs, applies, op, p, filt):
    """Yields the matches of an index plan, charging the keys its bounds
    reach and the documents fetched (none for a count the keys answer)."""
    scans = [(_member(s.index), _bounds_test(s.bounds)) for s in p.scans]
    fetch = 0 if op.count_only and len(p.scans) == 1 and \
        p.scans[0].covers else 1
    exact = len(p.scans) == 1 and scans[0][0] is None and \
        set(p.scans[0].bounds) == set(filt)
    for d in docs:
        if exact:
            if applies is None or applies(d):
                op.examine(keys=1, docs=fetch)
                yield d
            continue
        keys = 0
        for member, inside in scans:
            if (member is None or member(d)) and (inside is None or
                                                  inside(d)):
                keys += 1
        if not keys:
            continue
        op.examine(keys=keys, docs=fetch)
        if applies is None or applies(d):
            yield d


class Engine:
    """Every database and collection the server holds."""

    def __init__(self):
        self.client = mongomock.MongoClient()
        self.dbs = {}
        self.history = None
        # The account of the command running now (one at a time); commands
        # set it, work outside any command charges nothing.
        self.idle_op = cost.NullOp()
        self.op = self.idle_op
        self.notablescan = False

    def collection(self, db, name, create=False):
        """The collection, or None if it does not exist and create is
        false. Returns (collection, created)."""
        colls = self.dbs.get(db)
        coll = colls.get(name) if colls is not None else None
        if coll is not None or not create:
            return coll, False
        if colls is None:
            colls = self.dbs[db] = {}
        coll = DevCollection(self.client[db], name, '%s.%s' % (db, name),
                             self)
        coll.history = self.history
        coll._store.drop()
        coll._store.create()
        colls[name] = coll
        return coll, True

    def collections(self, db):
        return self.dbs.get(db, {})

    def drop_collection(self, db, name):
        colls = self.dbs.get(db, {})
        coll = colls.pop(name, None)
        if coll is not None:
            coll.clear()
            if self.history is not None:
                self.history.dropped(coll.ns)
        if not colls:
            self.dbs.pop(db, None)
        return coll

    def drop_database(self, db):
        for name in list(self.dbs.get(db, {})):
            self.drop_collection(db, name)

    def database(self, db):
        return self.client[db]


def _count_pipeline(coll, pipeline):
    """The result of [$match] [$skip|$limit]... $group{_id: constant,
    f: {$sum: number}...}, the shape count_documents sends, computed
    without copying a document; None for any other pipeline."""
    stages = list(pipeline)
    if not stages or list(stages[-1]) != ['$group']:
        return None
    group = stages.pop()['$group']
    if not isinstance(group, dict) or '_id' not in group:
        return None
    gid = group['_id']
    if isinstance(gid, (dict, list)) or (isinstance(gid, str) and
                                         gid[:1] == '$'):
        return None
    sums = {}
    for field, acc in group.items():
        if field == '_id':
            continue
        if not isinstance(acc, dict) or list(acc) != ['$sum']:
            return None
        v = acc['$sum']
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        sums[field] = v
    spec = {}
    if stages and list(stages[0]) == ['$match']:
        spec = stages.pop(0)['$match']
        if not isinstance(spec, dict):
            return None
    n = coll.dev_count(spec) if coll is not None else 0
    for stage in stages:
        (op, v), = stage.items()
        if op not in ('$skip', '$limit') or isinstance(v, bool) or \
                not isinstance(v, int) or v < (0 if op == '$skip' else 1):
            return None
        n = max(n - v, 0) if op == '$skip' else min(n, v)
    if n == 0:
        return []
    out = {'_id': gid}
    for field, v in sums.items():
        total = v * n
        if isinstance(total, int) and not isinstance(v, Int64) and \
                INT32_MIN <= total <= INT32_MAX:
            out[field] = int(total)
        elif isinstance(total, int):
            out[field] = Int64(total)
        else:
            out[field] = float(total)
    return [out]


def run_pipeline(coll, database, pipeline):
    """Runs an aggregation pipeline over copies of the collection's
    documents, prefiltering a leading $match through the indexes; a
    pipeline mongod answers with a DISTINCT_SCAN is run and charged as one
    (distinct.py)."""
    counted = _count_pipeline(coll, pipeline)
    if counted is not None:
        return counted
    if coll is not None:
        docs = coll._store._documents.values()
        scan = distinct.plan(pipeline, coll.index_list(), docs)
        if scan is not None:
            return distinct.run(scan, docs, database, coll.engine.op, _hkey,
                                compile_filter)
    docs = []
    if coll is not None:
        spec = {}
        if pipeline and '$match' in pipeline[0] and len(pipeline[0]) == 1:
            spec = pipeline[0]['$match']
            pipeline = pipeline[1:]
        source = coll._iter_documents(spec)
        docs = [copy.deepcopy(d) for d in source]
    return list(mongomock.aggregate.process_pipeline(docs, database,
                                                     pipeline, None))


# -- mongomock's updaters, made to keep BSON number types --------------

def _number_type(x):
    if type(x) is bool or not isinstance(x, (int, float)):
        return None
    return float if isinstance(x, float) else Int64 if isinstance(
        x, Int64) else int


def _numeric(a, b, result):
    if float in (_number_type(a), _number_type(b)):
        return float(result)
    if Int64 in (_number_type(a), _number_type(b)) or \
            not INT32_MIN <= result <= INT32_MAX:
        return Int64(result)
    return int(result)


def _arith_updater(op_name, combine, missing):
    def updater(doc, field_name, value):
        if _number_type(value) is None:
            raise WriteFailure('Cannot %s with non-numeric argument: {%s: %s}'
                               % ('increment' if op_name == '$inc' else
                                  'multiply', field_name, format_value(value)),
                               14)
        if isinstance(doc, dict):
            cur = doc.get(field_name, _MISSING)
        elif isinstance(doc, list):
            idx = int(field_name)
            cur = doc[idx] if 0 <= idx < len(doc) else _MISSING
        else:
            return
        if cur is _MISSING:
            new = missing(value)
        elif _number_type(cur) is None:
            raise NonNumeric(op_name, field_name, cur)
        else:
            new = _numeric(cur, value, combine(cur, value))
        if isinstance(doc, dict):
            doc[field_name] = new
        else:
            idx = int(field_name)
            doc.extend([None] * (idx + 1 - len(doc)))
            doc[idx] = new
    return updater


def _add_to_set_updater(doc, field_name, value):
    # mongomock's own keeps duplicates that come within one $each.
    if isinstance(value, dict) and list(value) == ['$each']:
        items = value['$each']
        if not isinstance(items, list):
            raise WriteFailure("The argument to $each in $addToSet must be "
                               "an array but it was of type: %s" %
                               type(items).__name__, 2)
    else:
        items = [value]
    if isinstance(doc, dict):
        cur = doc.get(field_name, _MISSING)
    elif isinstance(doc, list) and field_name.isdigit():
        idx = int(field_name)
        cur = doc[idx] if idx < len(doc) else _MISSING
    else:
        return
    if cur is _MISSING:
        cur = []
        if isinstance(doc, dict):
            doc[field_name] = cur
        else:
            doc.extend([None] * (int(field_name) + 1 - len(doc)))
            doc[int(field_name)] = cur
    elif not isinstance(cur, list):
        raise WriteFailure("Cannot apply $addToSet to non-array field. Field "
                           "named '%s' has non-array type %s"
                           % (field_name, type(cur).__name__), 2)
    present = {_hkey(e) for e in cur}
    for item in items:
        hk = _hkey(item)
        if hk not in present:
            present.add(hk)
            cur.append(copy.deepcopy(item))


def _now_millis():
    now = datetime.datetime.utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _patch_mongomock():
    # Module-level hooks mongomock looks up at call time: $inc and $mul that
    # keep int32/int64/double as MongoDB does, an $addToSet that dedupes
    # $each, and $currentDate at BSON's millisecond precision so the value
    # stored equals the value read back.
    updaters = mongomock.collection._updaters
    updaters['$inc'] = _arith_updater('$inc', lambda a, b: a + b,
                                      lambda v: v)
    updaters['$mul'] = _arith_updater(
        '$mul', lambda a, b: a * b,
        lambda v: Int64(0) if isinstance(v, Int64) else 0.0 if isinstance(
            v, float) else 0)
    updaters['$addToSet'] = _add_to_set_updater
    updaters['$set'] = docupdate.set_updater
    mongomock.utcnow = _now_millis
    mongomock.helpers.utcnow = _now_millis


_patch_mongomock()
