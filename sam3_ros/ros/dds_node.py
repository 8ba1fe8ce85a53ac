"""The tracker node on the DDS-direct transport: ``PerceptionNode`` wired to Cyclone DDS topics and services."""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from ..interfaces import typestore
from ..pipeline.node import Reply, PerceptionNode, decode_image, is_compressed_topic
from ..settings import Settings
from . import names
from .dds import Participant

log = logging.getLogger(__name__)


def reply_message(reply: Reply, response_type: str) -> Any:
    """The service's response message (rosbags dataclass) carrying ``reply``'s fields."""
    _, fields = typestore().fielddefs[response_type]
    return typestore().types[response_type](**{name: getattr(reply, name) for name, _ in fields})


class DdsPerceptionNode:
    """Creates the publishers, then ``PerceptionNode`` (loads the engines), then subscriptions and services.
    ``decode`` is the node's image decoder (``PerceptionNode``'s ``decode``)."""

    def __init__(
        self,
        settings: Settings,
        engine_factory: Callable[[str], Any],
        participant: Participant,
        decode: Callable[[Any, int], np.ndarray] = decode_image,
    ):
        self.participant = participant
        out = settings.output
        publishers = {
            "instances": participant.publisher(out.instances_topic, names.INSTANCES_TYPE, "reliable"),
            "diagnostics": participant.publisher(names.DIAGNOSTICS_TOPIC, names.DIAGNOSTICS_TYPE, "reliable"),
        }
        if out.overlay:
            publishers["overlay"] = participant.publisher(names.OVERLAY_TOPIC, names.IMAGE_TYPE, "reliable")
        if out.label_image:
            publishers["labels"] = participant.publisher(names.LABELS_TOPIC, names.IMAGE_TYPE, "reliable")
        for kind, (topic, ros_type) in names.output_topics(settings).items():
            publishers[kind] = participant.publisher(topic, ros_type, "reliable")
        self.node = PerceptionNode(
            settings, engine_factory, lambda kind, message: publishers[kind].publish(message), decode
        )
        buffer = participant.receive_buffer
        self.node.diagnostics.set_transport(
            {"receive_buffer_bytes": buffer.granted, "receive_buffer_wanted_bytes": buffer.wanted},
            buffer.advice() if buffer.short else "",
        )
        if buffer.short:
            log.warning(buffer.advice())
        self.node.start()
        for topic in settings.input.topics:
            kind = names.COMPRESSED_TYPE if is_compressed_topic(settings, topic) else names.IMAGE_TYPE
            participant.subscribe(
                topic,
                kind,
                lambda message, t=topic: self.node.on_image(t, message),
                settings.input.qos,
                settings.input.qos_depth,
            )
        for camera, (depth_topic, info_topic) in self.node.depth_topics.items():
            participant.subscribe(
                depth_topic,
                names.IMAGE_TYPE,
                lambda message, c=camera: self.node.on_depth(c, message),
                settings.input.qos,
                settings.input.qos_depth,
            )
            participant.subscribe(
                info_topic,
                names.CAMERA_INFO_TYPE,
                lambda message, c=camera: self.node.on_camera_info(c, message),
                settings.input.qos,
            )
        participant.subscribe(names.PROMPT_TOPIC, names.PROMPT_TYPE, self.node.on_prompt_text, "reliable")
        for name, (srv_type, method) in names.SERVICES.items():
            handler = getattr(self.node, method)
            participant.service(
                name, srv_type, lambda request, h=handler, t=srv_type: reply_message(h(request), f"{t}_Response")
            )

    def close(self, timeout: float = 1.0) -> None:
        """Stop the workers (each finishes and publishes its current frame), then the DDS side."""
        self.node.stop(timeout / 2)
        self.participant.close(timeout / 2)
