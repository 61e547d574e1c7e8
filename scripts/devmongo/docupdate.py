"""An operator update applied to a copy of only what it touches.

mongomock updates a stored document in place, so the engine used to keep a
deep copy of every document it updated (to put it back when the update
failed), mongomock a second one (to tell whether anything changed), and
then encoded the whole result to enforce the 16 MiB limit. For the
updates the service sends ($set, $unset, $inc, $mul, $min, $max and
$addToSet on plain paths, eligible) the engine instead starts a shallow
copy of the document (start) and applies each field with apply_field,
which walks the path as mongomock does and copies each dict or list on it
before mongomock's own updater changes anything, so the stored document
stays as it was until the engine, having compared and checked the result,
puts it in place. Sizes: size_bound is a cheap upper bound of a document's
BSON size and growth_bound one of what an update can add to it, so only a
document that may be near the limit is encoded to be measured.
needs_patch says when mongomock's datetime patch would change anything;
set_updater is mongomock's $set without the trial encoding of values that
cannot fail it. Pure functions over documents; nothing here charges the
operation or touches a collection.
"""
import copy
import datetime

from bson.int64 import Int64
from bson.objectid import ObjectId

import mongomock.collection

_MISSING = object()
_DATETIME = datetime.datetime
_MONGOMOCK_UNSET = mongomock.collection._unset_updater
# Values the patch leaves as they are (besides dicts and lists, walked).
_UNPATCHED = frozenset([str, int, float, bool, type(None), ObjectId, Int64,
                        bytes])

# The operators apply_field applies: each changes only the containers on
# its path (the parent of the field, and the field's array for $addToSet),
# through mongomock's _update_document_single_field.
OPERATORS = frozenset(['$set', '$unset', '$inc', '$mul', '$min', '$max',
                       '$addToSet'])

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# A size_bound answer that is no bound: encode to know.
UNKNOWN = 1 << 62


def eligible(document):
    """Whether apply_field can apply this update: operators of
    OPERATORS only, each a non-empty mapping of plain dotted paths (no
    positional $, which looks at the query)."""
    if type(document) is not dict or not document:
        return False
    for op, fields in document.items():
        if op not in OPERATORS or type(fields) is not dict or not fields:
            return False
        for path in fields:
            if type(path) is not str or '$' in path:
                return False
    return True


def _own(value, owned):
    """A shallow copy of a container, remembered as this update's."""
    t = type(value)
    if t is dict:
        c = dict(value)
    elif t is list:
        c = list(value)
    else:
        c = copy.copy(value)
    owned.add(id(c))
    return c


def start(doc):
    """The copy an update is applied to (apply_field), and the set of
    the containers it owns."""
    owned = set()
    return _own(doc, owned), owned


def apply_field(top, owned, path, value, updater):
    """mongomock's _update_document_single_field(top, path, value,
    updater), walking the path as it does, on a copy: every dict or list
    it passes through, and the field's own value when it is one, is
    copied first (once per update), so the stored document the copy was
    started from never changes."""
    if '.' not in path and type(top) is dict:
        # a field of the top level (the copy, owned): its own value
        leaf = top.get(path)
        if isinstance(leaf, (dict, list)) and id(leaf) not in owned:
            top[path] = _own(leaf, owned)
        updater(top, path, value)
        return
    cur = top
    parts = path.split('.')
    for part in parts[:-1]:
        if isinstance(cur, list):
            try:
                i = int(part)
            except ValueError:
                continue  # mongomock stays on the array
            nxt = cur[i]  # IndexError: mongomock's own
            if isinstance(nxt, (dict, list)) and id(nxt) not in owned:
                nxt = cur[i] = _own(nxt, owned)
            cur = nxt
        elif isinstance(cur, dict):
            if updater is _MONGOMOCK_UNSET and part not in cur:
                return
            nxt = cur.get(part, _MISSING)
            if nxt is _MISSING:
                nxt = cur[part] = {}
                owned.add(id(nxt))
            elif isinstance(nxt, (dict, list)) and id(nxt) not in owned:
                nxt = cur[part] = _own(nxt, owned)
            cur = nxt
        else:
            return
    last = parts[-1]
    if isinstance(cur, dict):
        leaf = cur.get(last)
        if isinstance(leaf, (dict, list)) and id(leaf) not in owned:
            cur[last] = _own(leaf, owned)
    elif isinstance(cur, list):
        try:
            i = int(last)
            leaf = cur[i]
        except (ValueError, IndexError):
            leaf = None
        if isinstance(leaf, (dict, list)) and id(leaf) not in owned:
            cur[i] = _own(leaf, owned)
    updater(cur, last, value)


# -- mongomock's datetime patch -----------------------------------------

def needs_patch(v):
    """Whether mongomock's patch_datetime_awareness_in_document would give
    back anything but an equal copy of v: a datetime with a zone or below
    the millisecond, a zero Timestamp, a tuple or a mapping other than a
    dict, anywhere in it."""
    t = type(v)
    if t is dict:
        for x in v.values():
            t = type(x)
            if t in _UNPATCHED:
                continue
            if needs_patch(x):
                return True
        return False
    if t is list:
        for x in v:
            if type(x) not in _UNPATCHED and needs_patch(x):
                return True
        return False
    if t is datetime.datetime:
        return v.tzinfo is not None or v.microsecond % 1000 != 0
    return t not in _UNPATCHED


# -- size ---------------------------------------------------------------

def size_bound(doc):
    """An upper bound of len(bson.encode(doc)), or UNKNOWN (at least as
    big) for a value it does not price or that could not be encoded: a
    name with a NUL, an int beyond 64 bits, a type it does not know."""
    try:
        names = ''.join(doc)
    except TypeError:
        return UNKNOWN  # a name that is not a string
    if '\x00' in names:
        return UNKNOWN
    # length, NUL; then per element a type byte, its name and a NUL
    n = 5 + 2 * len(doc) + (len(names) if names.isascii() else
                            4 * len(names))
    return n + _values_bound(doc.values())


def _values_bound(values):
    n = 0
    for v in values:
        t = type(v)
        if t is str:
            n += 5 + (len(v) if v.isascii() else 4 * len(v))
        elif t is ObjectId:
            n += 12
        elif t is float or t is datetime.datetime or t is bool or v is None:
            n += 8
        elif t is dict:
            n += size_bound(v)
        elif t is int or t is Int64:
            if not INT64_MIN <= v <= INT64_MAX:
                return UNKNOWN
            n += 8
        elif t is list:
            # a document of names '0', '1'...
            n += 5 + len(v) * (2 + len(str(len(v)))) + _values_bound(v)
        else:
            return UNKNOWN
    return n


def growth_bound(document):
    """An upper bound of the bytes an eligible update adds to a document's
    BSON: each path it names created whole from the top (per part a type
    byte, a name, a NUL and an empty subdocument) with its value, nothing
    taken off; UNKNOWN for $inc and $mul (their results are no value of
    the update, and may not fit 64 bits), a name with a NUL, or a value
    size_bound does not price."""
    n = 0
    for op, fields in document.items():
        if op == '$inc' or op == '$mul':
            return UNKNOWN
        if op == '$unset':
            continue
        for path, value in fields.items():
            if '\x00' in path:
                return UNKNOWN
            n += 7 * (path.count('.') + 1) + 4 * len(path)
            if op == '$addToSet':
                items = value
                if type(value) is dict and list(value) == ['$each']:
                    items = value['$each']
                    if type(items) is not list:
                        return UNKNOWN
                else:
                    items = [value]
                # a new array, and per item an index of up to 10 digits
                n += 5 + 12 * len(items) + _values_bound(items)
            else:
                t = type(value)
                if t is ObjectId or t is float or t is _DATETIME or \
                        t is bool or value is None:
                    n += 12
                else:
                    n += _values_bound((value,))
    return n


# -- $set ---------------------------------------------------------------

_PLAIN = frozenset([str, float, bool, type(None), ObjectId,
                    datetime.datetime])


def _checked_key_ok(k):
    return type(k) is str and k[:1] != '$' and '.' not in k and \
        '\x00' not in k


def _checked_value_ok(v):
    """Whether encoding v with check_keys cannot fail: every key of it a
    string with no NUL, no '.' and no leading '$', every value plain."""
    t = type(v)
    if t in _PLAIN:
        return True
    if t is int or t is Int64:
        return INT64_MIN <= v <= INT64_MAX
    if t is dict:
        for k, x in v.items():
            if not _checked_key_ok(k) or not _checked_value_ok(x):
                return False
        return True
    return False


_MONGOMOCK_SET = mongomock.collection._set_updater


def set_updater(doc, field_name, value):
    """mongomock's $set updater, which encodes {field: value} with
    check_keys to refuse what BSON cannot hold: skipped where that
    encoding cannot fail (a dict parent, a plain value, a plain name)."""
    if type(doc) is dict and type(value) is not list and \
            _checked_key_ok(field_name) and _checked_value_ok(value):
        doc[field_name] = value
        return
    _MONGOMOCK_SET(doc, field_name, value)
