"""MongoDB wire protocol framing for the development server.

Reads whole messages from a socket with one preallocated buffer per message
(no quadratic concatenation), decodes the two request kinds libmongoc sends
(OP_QUERY for the first handshake, OP_MSG for everything after, document
sequences merged into the command) and encodes the matching replies.
"""

import struct

import bson
from bson.codec_options import CodecOptions
from bson.binary import UuidRepresentation

import bsonenc

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

MSG_CHECKSUM_PRESENT = 1 << 0
MSG_MORE_TO_COME = 1 << 1
REPLY_QUERY_FAILURE = 1 << 1

MAX_BSON_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48000000

# Datetimes come back naive in UTC and binaries as Binary, so every value
# re-encodes to the bytes it arrived as.
CODEC = CodecOptions(document_class=dict, tz_aware=False,
                     uuid_representation=UuidRepresentation.UNSPECIFIED)

_HEADER = struct.Struct('<iiii')
_INT32 = struct.Struct('<i')
_UINT32 = struct.Struct('<I')
_REPLY_PREFIX = struct.Struct('<iiiiiqii')
_MSG_PREFIX = struct.Struct('<iiiiIB')


class ProtocolError(Exception):
    """A message that cannot be framed or decoded: the connection closes."""


class Request:
    """One decoded request: the command, how to answer, and whether to.
    A legacy query on a collection carries only the error to answer."""

    __slots__ = ('request_id', 'op_code', 'command', 'db', 'reply_wanted',
                 'legacy_error')

    def __init__(self, request_id, op_code, command, db, reply_wanted,
                 legacy_error=None):
        self.request_id = request_id
        self.op_code = op_code
        self.command = command
        self.db = db
        self.reply_wanted = reply_wanted
        self.legacy_error = legacy_error


def _recv_exact(sock, view):
    """Fills view completely; False on a clean close before any byte."""
    got = 0
    size = len(view)
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            if got == 0:
                return False
            raise ProtocolError('connection closed mid-message')
        got += n
    return True


def read_message(sock):
    """Returns (request_id, op_code, body bytes) or None at end of stream."""
    header = bytearray(16)
    if not _recv_exact(sock, memoryview(header)):
        return None
    length, request_id, _response_to, op_code = _HEADER.unpack(header)
    if length < 16 or length > MAX_MESSAGE_SIZE + 16 * 1024:
        raise ProtocolError('bad message length %d' % length)
    body = bytearray(length - 16)
    if body and not _recv_exact(sock, memoryview(body)):
        raise ProtocolError('connection closed mid-message')
    return request_id, op_code, bytes(body)


def _cstring(body, pos):
    end = body.find(b'\x00', pos)
    if end < 0:
        raise ProtocolError('unterminated cstring')
    return body[pos:end].decode('utf-8', 'replace'), end + 1


def _decode_one(data):
    try:
        return bson.decode(data, CODEC)
    except Exception as exc:  # bson raises several types for bad input
        raise ProtocolError('invalid bson: %s' % exc) from None


def _decode_all(data):
    try:
        return bson.decode_all(data, CODEC)
    except Exception as exc:
        raise ProtocolError('invalid bson: %s' % exc) from None


def _parse_op_msg(request_id, body):
    if len(body) < 5:
        raise ProtocolError('short OP_MSG')
    flags = _UINT32.unpack_from(body, 0)[0]
    end = len(body)
    if flags & MSG_CHECKSUM_PRESENT:
        end -= 4
    pos = 4
    command = None
    sequences = []
    while pos < end:
        kind = body[pos]
        pos += 1
        if pos + 4 > end:
            raise ProtocolError('truncated OP_MSG section')
        size = _INT32.unpack_from(body, pos)[0]
        if size < 5 or pos + size > end:
            raise ProtocolError('bad OP_MSG section size %d' % size)
        if kind == 0:
            if command is not None:
                raise ProtocolError('two body sections in OP_MSG')
            command = _decode_one(body[pos:pos + size])
        elif kind == 1:
            ident, docs_at = _cstring(body, pos + 4)
            if docs_at > pos + size:
                raise ProtocolError('bad document sequence')
            sequences.append((ident, _decode_all(body[docs_at:pos + size])))
        else:
            raise ProtocolError('unknown OP_MSG section kind %d' % kind)
        pos += size
    if command is None:
        raise ProtocolError('OP_MSG without a body section')
    for ident, docs in sequences:
        command.setdefault(ident, [])
        if not isinstance(command[ident], list):
            raise ProtocolError('sequence %r clashes with a field' % ident)
        command[ident].extend(docs)
    db = command.get('$db')
    if not isinstance(db, str):
        db = 'admin'
    return Request(request_id, OP_MSG, command, db,
                   not flags & MSG_MORE_TO_COME)


def _parse_op_query(request_id, body):
    if len(body) < 4:
        raise ProtocolError('short OP_QUERY')
    ns, pos = _cstring(body, 4)
    pos += 8  # numberToSkip, numberToReturn
    if pos + 4 > len(body):
        raise ProtocolError('truncated OP_QUERY')
    size = _INT32.unpack_from(body, pos)[0]
    if size < 5 or pos + size > len(body):
        raise ProtocolError('bad OP_QUERY document size')
    query = _decode_one(body[pos:pos + size])
    # A command may come wrapped with its read preference.
    if '$query' in query and isinstance(query['$query'], dict):
        query = query['$query']
    db, _, coll = ns.partition('.')
    if coll != '$cmd':
        return Request(request_id, OP_QUERY, query, db, True,
                       "legacy OP_QUERY on '%s' is not supported: use the "
                       "find command" % ns)
    return Request(request_id, OP_QUERY, query, db or 'admin', True)


def parse_request(request_id, op_code, body):
    """Decodes one message body; ProtocolError for anything unusable."""
    if op_code == OP_MSG:
        return _parse_op_msg(request_id, body)
    if op_code == OP_QUERY:
        return _parse_op_query(request_id, body)
    raise ProtocolError('unsupported op code %d' % op_code)


def encode_reply(request, reply_id, reply):
    """Encodes the reply document in the framing the request came in."""
    flags = 0
    if request.legacy_error is not None:
        flags = REPLY_QUERY_FAILURE
        reply = {'$err': request.legacy_error, 'code': 352}
    doc = bsonenc.encode(reply)
    if request.op_code == OP_QUERY:
        length = _REPLY_PREFIX.size + len(doc)
        return _REPLY_PREFIX.pack(length, reply_id, request.request_id,
                                  OP_REPLY, flags, 0, 0, 1) + doc
    length = _MSG_PREFIX.size + len(doc)
    return _MSG_PREFIX.pack(length, reply_id, request.request_id, OP_MSG,
                            0, 0) + doc
