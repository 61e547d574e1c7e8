"""An operator update applied to a copy of only what it touches.

mongomock updates a stored document in place, so the engine used to keep a
deep copy of every document it updated (to put it back when the update
failed), mongomock a second one (to tell whether anything changed), and
then encoded the whole result to enforce the 16 MiB limit. For the
updates the service sends ($set, $unset, $inc, $mul, $min, $max and
$addToSet on plain paths) this module instead copies the top of the
document and each container on the paths the update names
(copy_touched), so mongomock's own updaters can run on the copy while the
stored document stays as it was; the engine compares, checks and then
puts the result in place. size_bound is a cheap upper bound of a
document's BSON size: only a document it cannot place under the limit is
encoded to be measured. set_updater is mongomock's $set without the trial
encoding of values that cannot fail it. Pure functions over documents;
nothing here charges the operation or touches a collection.
"""

import datetime

from bson.int64 import Int64
from bson.objectid import ObjectId

import mongomock.collection

# The operators copy_touched prepares for: each changes only the containers
# on its paths (the parent of the field, and the field's array for
# $addToSet), through mongomock's _update_document_single_field.
OPERATORS = frozenset(['$set', '$unset', '$inc', '$mul', '$min', '$max',
                       '$addToSet'])

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# A size_bound answer that is no bound: encode to know.
UNKNOWN = 1 << 62


def eligible(document):
    """Whether copy_touched can prepare this update: operators of
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
    if type(value) is dict:
        c = dict(value)
    else:
        c = list(value)
    owned.add(id(c))
    return c


def _is_container(v):
    t = type(v)
    return t is dict or t is list


def copy_touched(doc, document):
    """A copy of doc sharing everything the update cannot change: the top
    level and every dict or list on a path the update names (walked as
    mongomock's _update_document_single_field walks it) are copies, the
    field's own value too when it is a container, so applying the update
    to the copy leaves doc as it was."""
    owned = set()
    top = _own(doc, owned)
    for fields in document.values():
        for path in fields:
            cur = top
            parts = path.split('.')
            for part in parts[:-1]:
                if type(cur) is list:
                    try:
                        i = int(part)
                    except ValueError:
                        continue  # mongomock stays on the array
                    try:
                        nxt = cur[i]
                    except IndexError:
                        break  # the updater raises the same, on the copy
                    if _is_container(nxt) and id(nxt) not in owned:
                        nxt = cur[i] = _own(nxt, owned)
                    cur = nxt
                elif type(cur) is dict:
                    nxt = cur.get(part)
                    if nxt is None:
                        break  # created fresh, or a null it stops at
                    if _is_container(nxt) and id(nxt) not in owned:
                        nxt = cur[part] = _own(nxt, owned)
                    cur = nxt
                else:
                    break
            else:
                last = parts[-1]
                if type(cur) is dict:
                    leaf = cur.get(last)
                    if _is_container(leaf) and id(leaf) not in owned:
                        cur[last] = _own(leaf, owned)
                elif type(cur) is list:
                    try:
                        i = int(last)
                        leaf = cur[i]
                    except (ValueError, IndexError):
                        continue
                    if _is_container(leaf) and id(leaf) not in owned:
                        cur[i] = _own(leaf, owned)
    return top


# -- size ---------------------------------------------------------------

def _key_bound(k):
    # type byte, name, NUL; a name with NUL cannot be encoded: no bound
    if type(k) is not str or '\x00' in k:
        return UNKNOWN
    return 2 + (len(k) if k.isascii() else 4 * len(k))


def _value_bound(v):
    t = type(v)
    if t is str:
        return 5 + (len(v) if v.isascii() else 4 * len(v))
    if t is ObjectId:
        return 12
    if t is float or t is bool or v is None or t is datetime.datetime:
        return 8
    if t is int or t is Int64:
        return 8 if INT64_MIN <= v <= INT64_MAX else UNKNOWN
    if t is dict:
        return size_bound(v)
    if t is list:
        n = 5
        digits = len(str(len(v)))
        for x in v:
            n += 2 + digits + _value_bound(x)
        return n
    return UNKNOWN


def size_bound(doc):
    """An upper bound of len(bson.encode(doc)), or UNKNOWN (at least as
    big) for a value it does not price or that could not be encoded."""
    n = 5
    for k, v in doc.items():
        n += _key_bound(k) + _value_bound(v)
    return n


# -- $set ---------------------------------------------------------------

_PLAIN = frozenset([str, float, bool, type(None), ObjectId,
                    datetime.datetime])


def _checked_keys_ok(v):
    """Whether encoding v with check_keys cannot fail: every key a string
    with no NUL, no '.' and no leading '$', every value plain."""
    t = type(v)
    if t in _PLAIN:
        return True
    if t is int or t is Int64:
        return INT64_MIN <= v <= INT64_MAX
    if t is dict:
        for k, x in v.items():
            if type(k) is not str or k[:1] == '$' or '.' in k or \
                    '\x00' in k or not _checked_keys_ok(x):
                return False
        return True
    return False


_MONGOMOCK_SET = mongomock.collection._set_updater


def set_updater(doc, field_name, value):
    """mongomock's $set updater, which encodes {field: value} with
    check_keys to refuse what BSON cannot hold: skipped where that
    encoding cannot fail (a dict parent, a plain value, a plain name)."""
    if type(doc) is dict and type(value) is not list and \
            _checked_keys_ok({field_name: value}):
        doc[field_name] = value
        return
    _MONGOMOCK_SET(doc, field_name, value)
