"""ROS 2 topics and services spoken directly over Cyclone DDS (no ROS install), rmw_cyclonedds style.

Names: topic ``/a/b`` is DDS topic ``rt/a/b``; service ``/a/s`` is ``rq/a/sRequest`` +
``rr/a/sReply``. Types come from ``dds_types`` (generated from the typestore). QoS profiles map to
DDS QoS as rclpy's do; the domain is ``ROS_DOMAIN_ID`` (0 when unset). Each subscription and
service runs its own thread (a WaitSet on its reader), so a slow callback never delays another.
The domain is configured for full-resolution frames (``dds_config``), merged with ``CYCLONEDDS_URI``.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from cyclonedds.core import (
    DDSException,
    GuardCondition,
    InstanceState,
    Policy,
    Qos,
    ReadCondition,
    SampleState,
    ViewState,
    WaitSet,
)
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from ..settings import InputSettings
from .dds_config import ReceiveBuffer, participant_config
from .dds_types import Received, WireType
from .names import QOS_POLICIES

log = logging.getLogger(__name__)

MAX_DOMAIN_ID = 232  # ROS 2's limit for the default port mapping
_WAKE_PERIOD = duration(milliseconds=250)  # readers re-check for shutdown at least this often


def domain_id() -> int:
    """The ROS domain from ``ROS_DOMAIN_ID`` (0 when unset), validated."""
    text = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) > MAX_DOMAIN_ID:
        raise ValueError(f"ROS_DOMAIN_ID={text!r} is not an integer in [0, {MAX_DOMAIN_ID}]")
    return int(text)


def topic_name(name: str, namespace: str = "") -> str:
    """Fully qualified ROS name: relative names are put under ``namespace``."""
    if not name or name.endswith("/") or "//" in name:
        raise ValueError(f"invalid ROS name {name!r}")
    if name.startswith("/"):
        return name
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{namespace}/{name}"


def dds_qos(profile: str, depth: int | None = None, type_hash: str = "") -> Qos:
    """DDS QoS for a ROS QoS profile name (``sensor_data``, ``reliable``, ``best_effort``, ``services``)."""
    if profile not in QOS_POLICIES:
        raise ValueError(f"unknown QoS profile {profile!r}; expected one of {', '.join(QOS_POLICIES)}")
    reliable, default_depth = QOS_POLICIES[profile]
    policies = [
        Policy.Reliability.Reliable(duration(milliseconds=100)) if reliable else Policy.Reliability.BestEffort,
        Policy.History.KeepLast(depth or default_depth),
        Policy.Durability.Volatile,
        Policy.DataRepresentation(use_cdrv0_representation=True),  # XCDR1, as rmw_cyclonedds
    ]
    if type_hash:  # ROS 2 Jazzy reads the type hash from USER_DATA (it matches without, but warns)
        policies.append(Policy.Userdata(data=f"typehash={type_hash};".encode()))
    return Qos(*policies)


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Publisher:
    """Writes ROS messages (rosbags dataclasses) on one topic."""

    def __init__(
        self, participant: "Participant", name: str, ros_type: str, qos: str = "reliable", depth: int | None = None
    ):
        self.name, self.wire = name, WireType(ros_type)
        profile = dds_qos(qos, depth, self.wire.type_hash())
        self.writer = DataWriter(participant.dp, participant.topic("rt" + name, self.wire, profile), qos=profile)

    def publish(self, message: Any) -> None:
        """Serialize and write one message."""
        self.writer.write(self.wire.encode(message))

    def subscription_count(self) -> int:
        """Number of matched subscriptions (readers of this topic)."""
        return len(self.writer.get_matched_subscriptions())

    def wait_for_subscribers(self, count: int = 1, timeout: float = 10.0) -> bool:
        """True once ``count`` readers have matched (samples written before matching are lost)."""
        return _wait_until(lambda: self.subscription_count() >= count, timeout)


class _ReaderThread:
    """A DataReader whose samples go to ``on_sample(data: bytes)`` on a dedicated thread."""

    def __init__(
        self,
        participant: "Participant",
        dds_name: str,
        wire: WireType,
        qos: Qos,
        label: str,
        on_sample: Callable[[bytes], None],
    ):
        self.reader = DataReader(participant.dp, participant.topic(dds_name, wire, qos), qos=qos)
        self._on_sample, self._participant = on_sample, participant
        self._waitset = WaitSet(participant.dp)
        self._waitset.attach(ReadCondition(self.reader, SampleState.Any | ViewState.Any | InstanceState.Any))
        self._waitset.attach(participant.guard)
        self.thread = threading.Thread(target=self._run, name=f"dds:{label}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._participant.closing:
                self._waitset.wait(_WAKE_PERIOD)
                for sample in self.reader.take(16):
                    if isinstance(sample, Received):  # others are InvalidSample (writer gone): nothing to read
                        self._deliver(sample.data)
        except DDSException:
            if not self._participant.closing:  # entities deleted under us at shutdown are expected
                raise

    def _deliver(self, data: bytes) -> None:
        try:
            self._on_sample(data)
        except DDSException:
            raise
        except Exception:  # a bad callback must not kill the reader
            log.exception("callback on %s failed", self.thread.name)

    def publisher_count(self) -> int:
        return len(self.reader.get_matched_publications())


class Subscription(_ReaderThread):
    """Calls ``callback(message)`` for each message on a topic, on the subscription's own thread."""

    def __init__(
        self,
        participant: "Participant",
        name: str,
        ros_type: str,
        callback: Callable[[Any], None],
        qos: str = "reliable",
        depth: int | None = None,
    ):
        self.name, self.wire = name, WireType(ros_type)
        super().__init__(
            participant,
            "rt" + name,
            self.wire,
            dds_qos(qos, depth, self.wire.type_hash()),
            name,
            lambda data: callback(self.wire.decode(data)[0]),
        )

    def wait_for_publishers(self, count: int = 1, timeout: float = 10.0) -> bool:
        """True once ``count`` writers have matched."""
        return _wait_until(lambda: self.publisher_count() >= count, timeout)


class ServiceServer:
    """Answers ``rq/<name>Request`` on ``rr/<name>Reply``: ``handler(request) -> response`` on its own thread."""

    def __init__(self, participant: "Participant", name: str, srv_type: str, handler: Callable[[Any], Any]):
        self.name, self.handler = name, handler
        self.request_wire = WireType(f"{srv_type}_Request", request_header=True)
        self.reply_wire = WireType(f"{srv_type}_Response", request_header=True)
        qos = dds_qos("services")
        self.writer = DataWriter(participant.dp, participant.topic(f"rr{name}Reply", self.reply_wire, qos), qos=qos)
        self._reader = _ReaderThread(participant, f"rq{name}Request", self.request_wire, qos, name, self._serve)

    def _serve(self, data: bytes) -> None:
        request, guid, seq = self.request_wire.decode(data)
        response = self.handler(request)
        self.writer.write(self.reply_wire.encode(response, guid, seq))


class ServiceClient:
    """Calls a service: ``call(request)`` returns the response (matched by the echoed guid and sequence)."""

    def __init__(self, participant: "Participant", name: str, srv_type: str):
        self.name = name
        self.request_wire = WireType(f"{srv_type}_Request", request_header=True)
        self.reply_wire = WireType(f"{srv_type}_Response", request_header=True)
        self.request_class = self.request_wire.message_class
        self._guid = random.getrandbits(64)
        self._seq = itertools.count(1)
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        qos = dds_qos("services")
        self.writer = DataWriter(participant.dp, participant.topic(f"rq{name}Request", self.request_wire, qos), qos=qos)
        self._reader = _ReaderThread(participant, f"rr{name}Reply", self.reply_wire, qos, name, self._on_reply)

    def _on_reply(self, data: bytes) -> None:
        response, guid, seq = self.reply_wire.decode(data)
        if guid != self._guid:
            return  # a reply to another client of the same service
        with self._lock:
            future = self._pending.pop(seq, None)
        if future is not None:
            future.set_result(response)

    def wait_for_service(self, timeout: float = 10.0) -> bool:
        """True once a server's request reader and reply writer have both matched."""
        return _wait_until(
            lambda: bool(self.writer.get_matched_subscriptions()) and self._reader.publisher_count() > 0, timeout
        )

    def call(self, request: Any, timeout: float = 10.0) -> Any:
        """Send one request and wait for its reply; TimeoutError if none comes."""
        seq = next(self._seq)
        future: Future = Future()
        with self._lock:
            self._pending[seq] = future
        self.writer.write(self.request_wire.encode(request, self._guid, seq))
        try:
            return future.result(timeout)
        except TimeoutError:
            raise TimeoutError(f"no reply from service {self.name} within {timeout} s") from None
        finally:
            with self._lock:
                self._pending.pop(seq, None)


class _Domains:
    """The Cyclone domains this process configured, shared by its participants of each domain id.

    A domain's configuration is fixed when it is created, so the first participant of a domain id
    creates it with its configuration and the last one to close deletes it (deleting a domain deletes
    everything in it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._domains: dict[int, list] = {}  # domain id -> [Domain, participants using it]

    def join(self, domain: int, config: str) -> None:
        with self._lock:
            if domain in self._domains:
                self._domains[domain][1] += 1
                return
            try:
                self._domains[domain] = [Domain(domain, config), 1]
            except DDSException as exc:
                if exc.code != DDSException.DDS_RETCODE_PRECONDITION_NOT_MET:
                    raise ValueError(
                        f"Cyclone DDS rejected its configuration (CYCLONEDDS_URI merged with ours): {exc}"
                    ) from None
                # created outside this class (a plain DomainParticipant): it keeps its configuration
                log.warning("DDS domain %d already exists in this process; its configuration is kept", domain)

    def leave(self, domain: int) -> None:
        with self._lock:
            entry = self._domains.get(domain)
            if entry is not None:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._domains[domain]
                    entry[0].__del__()  # cyclonedds deletes entities when collected; this is that deletion, now


_DOMAINS = _Domains()


class Participant:
    """One DDS domain participant per process, with topic caching and orderly shutdown of reader threads.

    ``largest_frame_bytes`` sizes the socket receive buffer (``dds_config.ReceiveBuffer``; None: the
    settings' default); ``receive_buffer`` tells what was asked for and what the kernel allows."""

    def __init__(self, domain: int | None = None, namespace: str = "", largest_frame_bytes: int | None = None):
        self.domain = domain_id() if domain is None else domain
        self.namespace = namespace
        self.receive_buffer = ReceiveBuffer.for_frames(largest_frame_bytes or InputSettings().largest_frame_bytes)
        _DOMAINS.join(self.domain, participant_config(self.receive_buffer))
        try:
            self.dp = DomainParticipant(self.domain)
        except DDSException:
            _DOMAINS.leave(self.domain)
            raise
        self.guard = GuardCondition(self.dp)
        self.closing = False
        self._topics: dict[str, Topic] = {}
        self._readers: list[_ReaderThread] = []

    def topic(self, dds_name: str, wire: WireType, qos: Qos) -> Topic:
        """The DDS topic ``dds_name`` of this type, created once per participant."""
        if dds_name not in self._topics:
            self._topics[dds_name] = Topic(self.dp, dds_name, wire.idl, qos=qos)
        return self._topics[dds_name]

    def publisher(self, name: str, ros_type: str, qos: str = "reliable", depth: int | None = None) -> Publisher:
        """A publisher on ROS topic ``name`` (relative names go under the namespace)."""
        return Publisher(self, topic_name(name, self.namespace), ros_type, qos, depth)

    def subscribe(
        self, name: str, ros_type: str, callback: Callable[[Any], None], qos: str = "reliable", depth: int | None = None
    ) -> Subscription:
        """Subscribe to ROS topic ``name``; ``callback(message)`` runs on the subscription's thread."""
        sub = Subscription(self, topic_name(name, self.namespace), ros_type, callback, qos, depth)
        self._readers.append(sub)
        return sub

    def service(self, name: str, srv_type: str, handler: Callable[[Any], Any]) -> ServiceServer:
        """Serve ``srv_type`` (e.g. ``std_srvs/srv/Trigger``) on ``name``."""
        server = ServiceServer(self, topic_name(name, self.namespace), srv_type, handler)
        self._readers.append(server._reader)
        return server

    def client(self, name: str, srv_type: str) -> ServiceClient:
        """A client of service ``name``."""
        client = ServiceClient(self, topic_name(name, self.namespace), srv_type)
        self._readers.append(client._reader)
        return client

    def close(self, timeout: float = 1.0) -> None:
        """Stop every reader thread (each finishes its current callback, up to ``timeout`` in all), then
        delete the participant and everything in it, so that peers see it leave at once."""
        if self.closing:
            return
        self.closing = True
        self.guard.set(True)
        deadline = time.monotonic() + timeout
        for reader in self._readers:
            reader.thread.join(max(deadline - time.monotonic(), 0.0))
        self.dp.__del__()  # cyclonedds deletes entities when collected; this is that deletion, now
        _DOMAINS.leave(self.domain)
