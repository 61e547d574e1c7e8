"""Inclusion projections of a find, without copying the document.

mongomock projects a document by copying every value it keeps (copy.copy
of each) and recombining the projection for every document, which made a
projected find several times slower than returning whole documents: the
opposite of mongod, where a projection only saves work. A find's results
are encoded at once (engine's ENCODED copies), so nothing needs a copy:
view() gives a dict holding the document's own values for the fields
kept, in the document's order, as mongomock's projection gives them
(encoded: the same bytes, _id first).

Only plain inclusions take this lane: every field 1 or True (and _id 0,
1, True or False), no projection operator, no '$' in a path, and no array
met on a dotted path (mongod then projects into each element). Anything
else returns None, and the caller hands the document to mongomock, which
keeps its own answers and errors (a path collision among them).
"""

from mongomock.collection import _combine_projection_spec

# fields (as a tuple of its items) -> (the nested spec, keep _id), or None
# when the projection is not a plain inclusion
_SPECS = {}
_SPECS_MAX = 256


class _Unplain(Exception):
    """The document needs mongomock's projection (an array on a path)."""


def _compile(fields):
    keep_id = fields.get('_id', 1)
    if type(keep_id) not in (int, bool) or keep_id not in (0, 1):
        return None
    rest = {}
    for path, v in fields.items():
        if path == '_id':
            continue
        if type(path) is not str or '$' in path or v is not True and (
                type(v) is not int or v != 1):
            return None
        rest[path] = v
    if not rest:
        return None
    try:
        spec = _combine_projection_spec(rest)
    except Exception:  # a path collision: mongomock's own error
        return None
    return spec, bool(keep_id)


def _spec(fields):
    try:
        key = tuple(fields.items())
        hash(key)
    except TypeError:
        return None
    got = _SPECS.get(key, _SPECS)
    if got is _SPECS:
        got = _compile(fields)
        if len(_SPECS) >= _SPECS_MAX:
            _SPECS.clear()
        _SPECS[key] = got
    return got


def _keep(doc, spec):
    out = {}
    for k, v in doc.items():
        s = spec.get(k)
        if s is None:
            continue
        if isinstance(s, dict):
            t = type(v)
            if t is dict:
                out[k] = _keep(v, s)
            elif t is list or t is tuple:
                raise _Unplain
            # a scalar under a dotted path: the field is left out
        else:
            out[k] = v
    return out


def view(doc, fields):
    """The document as the inclusion projection fields keeps it, its
    values shared with doc (encode it, never change it); None when the
    projection is not a plain inclusion or the document needs
    mongomock's projection."""
    if not isinstance(fields, dict) or type(doc) is not dict:
        return None
    got = _spec(fields)
    if got is None:
        return None
    spec, keep_id = got
    try:
        out = _keep(doc, spec)
    except _Unplain:
        return None
    out.pop('_id', None)
    if keep_id and '_id' in doc:
        out['_id'] = doc['_id']
    return out
