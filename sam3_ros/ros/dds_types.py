"""DDS topic types for ROS 2 messages and services, generated from the rosbags typestore.

One source of truth: every type is built at import time from ``sam3_ros.interfaces.typestore()``
(the standard ROS 2 definitions plus our ``msg/``/``srv/`` files). The generated ``IdlStruct`` classes
only describe the type to Cyclone DDS (name ``pkg::msg::dds_::Name_``, members, final extensibility,
XCDR1) so that it matches ``rmw_cyclonedds_cpp`` endpoints. The bytes themselves are made and read by
rosbags' numpy-backed CDR codec: Cyclone's per-element Python codec takes ~200 ms for one 720p
image. Cyclone calls ``sample.serialize()`` on write and ``Type.deserialize(data)`` on read, so both
are replaced on the generated class itself (a subclass makes Topic creation fail).

Services follow rmw_cyclonedds: the request and reply types carry the 16-byte request header
``{uint64 guid; int64 seq}`` as two leading members; the reply echoes the request's values.
"""

from __future__ import annotations

import struct
import types as pytypes
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as idl

from ..interfaces import typestore

_BASE = {
    "bool": bool,
    "byte": idl.uint8,
    "char": idl.uint8,
    "int8": idl.int8,
    "uint8": idl.uint8,
    "int16": idl.int16,
    "uint16": idl.uint16,
    "int32": idl.int32,
    "uint32": idl.uint32,
    "int64": idl.int64,
    "uint64": idl.uint64,
    "float32": idl.float32,
    "float64": idl.float64,
}
# rmw_cyclonedds' request header, prepended to every service request and reply on the wire.
_REQUEST_HEADER = struct.Struct("<Qq")
_CDR_HEADER_SIZE = 4


def dds_type_name(ros_type: str) -> str:
    """``sensor_msgs/msg/Image`` -> ``sensor_msgs::msg::dds_::Image_`` (also for ``pkg/srv/X_Request``)."""
    package, kind, name = ros_type.split("/")
    return f"{package}::{kind}::dds_::{name}_"


@dataclass
class Received:
    """A sample as Cyclone hands it over: the raw CDR bytes, decoded later by the reader's owner."""

    data: bytes


def _member_type(node: tuple) -> Any:
    from rosbags.typesys.base import Nodetype

    kind, detail = node
    if kind == Nodetype.BASE:
        name, bound = detail
        if name == "string":
            return idl.bounded_str[bound] if bound else str
        if name not in _BASE:
            raise TypeError(f"no DDS mapping for ROS base type {name!r}")
        return _BASE[name]
    if kind == Nodetype.NAME:
        return idl_struct(detail)
    sub, length = detail
    if kind == Nodetype.ARRAY:
        return idl.array[_member_type(sub), length]
    return idl.sequence[_member_type(sub), length] if length else idl.sequence[_member_type(sub)]


def _serialize(self, buffer=None, endianness=None, use_version_2=None) -> bytes:
    return self.wire


def _deserialize(cls, data, has_header=True, use_version_2=None) -> Received:
    return Received(bytes(data))


def _deserialize_key(cls, data, has_header=True, use_version_2=None) -> None:
    return None  # our types are keyless: an invalid sample (writer gone) carries nothing


@lru_cache(maxsize=None)
def idl_struct(ros_type: str, request_header: bool = False) -> type:
    """The Cyclone ``IdlStruct`` class for a ROS type (``request_header``: with rmw's service header)."""
    _, fields = typestore().fielddefs[ros_type]
    members: dict[str, Any] = {}
    if request_header:
        members.update(rmw_client_guid=idl.uint64, rmw_sequence_number=idl.int64)
    for name, node in fields:
        members[name] = _member_type(node)

    def body(namespace: dict) -> None:
        namespace["__annotations__"] = members

    cls = pytypes.new_class(ros_type.replace("/", "__"), (IdlStruct,), {"typename": dds_type_name(ros_type)}, body)
    cls.serialize = _serialize
    cls.deserialize = classmethod(_deserialize)
    cls.deserialize_key = classmethod(_deserialize_key)
    return cls


class WireType:
    """One ROS type on the wire: its Cyclone class and its (de)serialization through rosbags."""

    def __init__(self, ros_type: str, request_header: bool = False):
        self.ros_type = ros_type
        self.request_header = request_header
        self.idl = idl_struct(ros_type, request_header)
        self.message_class = typestore().types[ros_type]

    def encode(self, message: Any, guid: int = 0, seq: int = 0) -> Any:
        """A writable sample holding ``message`` serialized as XCDR1 little-endian."""
        data = typestore().serialize_cdr(message, self.ros_type)
        if self.request_header:
            data = b"".join((data[:_CDR_HEADER_SIZE], _REQUEST_HEADER.pack(guid, seq), data[_CDR_HEADER_SIZE:]))
        sample = object.__new__(self.idl)
        sample.wire = bytes(data)
        return sample

    def decode(self, data: bytes) -> tuple[Any, int, int]:
        """(message, guid, seq) from received bytes; guid and seq are 0 without a request header."""
        guid = seq = 0
        if self.request_header:
            guid, seq = _REQUEST_HEADER.unpack_from(data, _CDR_HEADER_SIZE)
            start = _CDR_HEADER_SIZE + _REQUEST_HEADER.size
            data = data[:_CDR_HEADER_SIZE] + data[start:]
        return typestore().deserialize_cdr(data, self.ros_type), guid, seq

    def type_hash(self) -> str:
        """RIHS01 hash of a message type, as ROS 2 Jazzy puts in USER_DATA (``""`` for service parts)."""
        return "" if self.request_header else typestore().hash_rihs01(self.ros_type)
