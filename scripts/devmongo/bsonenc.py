"""BSON encoding of the stored documents, quicker than bson's pure Python.

The bson package installed without its C extension encodes through a
generic dispatch per element; the development server encodes every
document a find returns, and every reply. encode() gives exactly the bytes
of bson.encode(doc) (default codec options, _id first at the top level)
for documents made of dicts, lists, strings, ints, Int64s, floats, bools,
None, ObjectIds, naive datetimes and RawBSONDocuments, and hands any other
document to bson.encode whole, so a value it does not know, or one BSON
cannot hold, gets bson's own answer or error.
"""

import datetime
import struct

import bson
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument

_INT = struct.Struct('<i').pack
_LONG = struct.Struct('<q').pack
_DOUBLE = struct.Struct('<d').pack
_EPOCH = datetime.datetime(1970, 1, 1)
_MS = datetime.timedelta(milliseconds=1)
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_DATETIME = datetime.datetime

# Encoded key names, C strings: keys repeat from document to document.
_NAMES = {}
_NAMES_MAX = 4096
_INDEXES = [str(i).encode() + b'\x00' for i in range(1024)]


class _Other(Exception):
    """A value this module leaves to bson."""


def _name(k):
    if type(k) is not str or '\x00' in k:
        raise _Other
    n = k.encode() + b'\x00'
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[k] = n
    return n


def _element(name, v, out):
    t = type(v)
    if t is str:
        b = v.encode()
        out.append(b'\x02' + name + _INT(len(b) + 1) + b + b'\x00')
    elif t is ObjectId:
        out.append(b'\x07' + name + v._ObjectId__id)
    elif t is dict:
        out.append(b'\x03' + name + _document(v, False))
    elif t is float:
        out.append(b'\x01' + name + _DOUBLE(v))
    elif t is int:
        if _INT32_MIN <= v <= _INT32_MAX:
            out.append(b'\x10' + name + _INT(v))
        elif _INT64_MIN <= v <= _INT64_MAX:
            out.append(b'\x12' + name + _LONG(v))
        else:
            raise _Other
    elif t is _DATETIME:
        if v.tzinfo is not None:
            raise _Other
        out.append(b'\x09' + name + _LONG((v - _EPOCH) // _MS))
    elif t is list:
        parts = []
        for i, x in enumerate(v):
            n = _INDEXES[i] if i < 1024 else str(i).encode() + b'\x00'
            if type(x) is RawBSONDocument:  # a reply's batch
                parts.append(b'\x03' + n + x.raw)
            else:
                _element(n, x, parts)
        data = b''.join(parts)
        out.append(b'\x04' + name + _INT(len(data) + 5) + data + b'\x00')
    elif t is bool:
        out.append(b'\x08' + name + (b'\x01' if v else b'\x00'))
    elif v is None:
        out.append(b'\x0A' + name)
    elif t is Int64:
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise _Other
        out.append(b'\x12' + name + _LONG(v))
    elif t is RawBSONDocument:
        out.append(b'\x03' + name + v.raw)
    else:
        raise _Other


def _document(d, top):
    out = []
    append = out.append
    names = _NAMES
    skip_id = top and '_id' in d
    if skip_id:
        _element(b'_id\x00', d['_id'], out)
    for k, v in d.items():
        if skip_id and k == '_id':
            continue
        name = names.get(k) or _name(k)
        # the commonest types inline, the rest through _element
        t = type(v)
        if t is str:
            b = v.encode()
            append(b'\x02' + name + _INT(len(b) + 1) + b + b'\x00')
        elif t is ObjectId:
            append(b'\x07' + name + v._ObjectId__id)  # .binary, unwrapped
        elif t is dict:
            append(b'\x03' + name + _document(v, False))
        elif t is int and _INT32_MIN <= v <= _INT32_MAX:
            append(b'\x10' + name + _INT(v))
        elif t is float:
            append(b'\x01' + name + _DOUBLE(v))
        elif t is _DATETIME and v.tzinfo is None:
            append(b'\x09' + name + _LONG((v - _EPOCH) // _MS))
        else:
            _element(name, v, out)
    data = b''.join(out)
    return _INT(len(data) + 5) + data + b'\x00'


def encode(doc):
    """bson.encode(doc), quicker for the types the module knows."""
    if type(doc) is not dict:
        return bson.encode(doc)
    try:
        return _document(doc, True)
    except Exception:  # anything unusual: bson's own answer or error
        return bson.encode(doc)
