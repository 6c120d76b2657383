"""KEDA external scaler mode (``serve --keda-grpc PORT``): KEDA asks, the policy answers.

KEDA's ``external`` scaler calls a gRPC service ``externalscaler.ExternalScaler``
(``pkg/scalers/externalscaler/externalscaler.proto`` in kedacore/keda). The messages and the
service are described here field by field (names and numbers as in KEDA's proto, read at
kedacore/keda commit 125494be, the version with the optional ``StreamMetricSpec``), so the
runtime needs only ``grpcio`` and ``protobuf``: no generated stubs, no ``grpc_tools``.
:func:`file_descriptor` is byte-identical to what ``grpc_tools.protoc`` 1.85.1 compiles from
that proto (SHA-256 :data:`PROTO_SHA256` of the serialised ``FileDescriptorProto``; a test
keeps it so).

* ``IsActive(ScaledObjectRef) -> IsActiveResponse{result}``: the farm has work (tasks queued
  or arriving, results waiting); false on an idle farm, so KEDA may scale it to zero;
* ``StreamIsActive``: the same answer, streamed whenever it changes;
* ``GetMetricSpec -> [MetricSpec{metricName, targetSize=1, targetSizeFloat=1}]``;
* ``GetMetrics -> [MetricValue{metricName, metricValue, metricValueFloat}]``: the policy's
  desired worker count at its last decision (at most one step old), guarded by
  ``--min-workers``/``--max-workers``. With target 1 per replica the HPA sets ``replicas``
  to exactly that value.

``StreamMetricSpec`` (optional in KEDA) is not implemented: KEDA falls back to
``GetMetricSpec`` on UNIMPLEMENTED.
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Callable, Iterator

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ..common.errors import UserError

PACKAGE = "externalscaler"
SERVICE = f"{PACKAGE}.ExternalScaler"
METRIC_NAME = "rl_autoscaler_desired_workers"
#: SHA-256 of protoc's FileDescriptorProto for KEDA's externalscaler.proto (commit 125494be)
PROTO_SHA256 = "22a4ef9b181dda6617be0b2884e840a6adbdd9a3c198fa2bf70c8aa9b163d3bd"

_F = descriptor_pb2.FieldDescriptorProto
_STRING, _BOOL, _INT64, _DOUBLE, _MESSAGE = (_F.TYPE_STRING, _F.TYPE_BOOL, _F.TYPE_INT64,
                                             _F.TYPE_DOUBLE, _F.TYPE_MESSAGE)
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

#: message -> [(field, number, type, label, message type)], as in KEDA's proto
MESSAGES: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "ScaledObjectRef": [("name", 1, _STRING, _OPTIONAL, None),
                        ("namespace", 2, _STRING, _OPTIONAL, None),
                        ("scalerMetadata", 3, _MESSAGE, _REPEATED,
                         "ScaledObjectRef.ScalerMetadataEntry")],
    "IsActiveResponse": [("result", 1, _BOOL, _OPTIONAL, None)],
    "GetMetricSpecResponse": [("metricSpecs", 1, _MESSAGE, _REPEATED, "MetricSpec")],
    "MetricSpec": [("metricName", 1, _STRING, _OPTIONAL, None),
                   ("targetSize", 2, _INT64, _OPTIONAL, None),
                   ("targetSizeFloat", 3, _DOUBLE, _OPTIONAL, None)],
    "GetMetricsRequest": [("scaledObjectRef", 1, _MESSAGE, _OPTIONAL, "ScaledObjectRef"),
                          ("metricName", 2, _STRING, _OPTIONAL, None)],
    "GetMetricsResponse": [("metricValues", 1, _MESSAGE, _REPEATED, "MetricValue")],
    "MetricValue": [("metricName", 1, _STRING, _OPTIONAL, None),
                    ("metricValue", 2, _INT64, _OPTIONAL, None),
                    ("metricValueFloat", 3, _DOUBLE, _OPTIONAL, None)],
}
#: method -> (request, response, server streaming)
METHODS = {
    "IsActive": ("ScaledObjectRef", "IsActiveResponse", False),
    "StreamIsActive": ("ScaledObjectRef", "IsActiveResponse", True),
    "GetMetricSpec": ("ScaledObjectRef", "GetMetricSpecResponse", False),
    "GetMetrics": ("GetMetricsRequest", "GetMetricsResponse", False),
    "StreamMetricSpec": ("ScaledObjectRef", "GetMetricSpecResponse", True),
}


def _add_fields(msg: descriptor_pb2.DescriptorProto, fields) -> None:
    for name, number, ftype, label, type_name in fields:
        f = msg.field.add(name=name, number=number, type=ftype, label=label, json_name=name)
        if type_name:
            f.type_name = f".{PACKAGE}.{type_name}"


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """KEDA's ``externalscaler.proto`` as a ``FileDescriptorProto``."""
    fd = descriptor_pb2.FileDescriptorProto(name="externalscaler.proto", package=PACKAGE,
                                            syntax="proto3")
    fd.options.go_package = ".;externalscaler"
    for name, fields in MESSAGES.items():
        msg = fd.message_type.add(name=name)
        _add_fields(msg, fields)
        if name == "ScaledObjectRef":  # map<string, string> scalerMetadata
            entry = msg.nested_type.add(name="ScalerMetadataEntry")
            entry.options.map_entry = True
            _add_fields(entry, [("key", 1, _STRING, _OPTIONAL, None),
                                ("value", 2, _STRING, _OPTIONAL, None)])
    service = fd.service.add(name="ExternalScaler")
    for method, (req, resp, streaming) in METHODS.items():
        rpc = service.method.add(name=method, input_type=f".{PACKAGE}.{req}",
                                 output_type=f".{PACKAGE}.{resp}")
        rpc.options.SetInParent()  # the proto's "{}"
        if streaming:
            rpc.server_streaming = True
    return fd


def message_classes() -> dict[str, type]:
    """Message name -> generated message class (a private descriptor pool)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(
        f"{PACKAGE}.{name}")) for name in MESSAGES}


class ExternalScalerService:
    """The gRPC servicer; ``state()`` returns the loop's latest ``KedaState``.

    Args:
        state: callable returning an object with ``desired`` (int) and ``active`` (bool).
        changed: an Event set at every decision (wakes ``StreamIsActive``).
        metric_name: the metric KEDA asks for.
    """

    def __init__(self, state: Callable[[], object], changed: threading.Event | None = None,
                 metric_name: str = METRIC_NAME) -> None:
        self.state, self.metric_name = state, metric_name
        self.changed = changed or threading.Event()
        self.m = message_classes()
        self.stopping = threading.Event()

    def IsActive(self, request, context):  # noqa: N802 - gRPC method names
        return self.m["IsActiveResponse"](result=bool(self.state().active))

    def StreamIsActive(self, request, context) -> Iterator:  # noqa: N802
        last = None
        while context.is_active() and not self.stopping.is_set():
            active = bool(self.state().active)
            if active != last:
                last = active
                yield self.m["IsActiveResponse"](result=active)
            self.changed.wait(1.0)
            self.changed.clear()

    def GetMetricSpec(self, request, context):  # noqa: N802
        spec = self.m["MetricSpec"](metricName=self.metric_name, targetSize=1,
                                    targetSizeFloat=1.0)
        return self.m["GetMetricSpecResponse"](metricSpecs=[spec])

    def GetMetrics(self, request, context):  # noqa: N802
        desired = int(self.state().desired)
        value = self.m["MetricValue"](metricName=request.metricName or self.metric_name,
                                      metricValue=desired, metricValueFloat=float(desired))
        return self.m["GetMetricsResponse"](metricValues=[value])


def _handlers(service: ExternalScalerService):
    import grpc

    m = service.m
    handlers = {}
    for method, (req, resp, streaming) in METHODS.items():
        impl = getattr(service, method, None)
        if impl is None:
            continue  # UNIMPLEMENTED: KEDA falls back
        make = (grpc.unary_stream_rpc_method_handler if streaming
                else grpc.unary_unary_rpc_method_handler)
        handlers[method] = make(impl, request_deserializer=m[req].FromString,
                                response_serializer=m[resp].SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


class KedaServer:
    """The gRPC server on ``host:port`` (bound in the constructor: a busy port is a one-line
    UserError before anything is scaled)."""

    def __init__(self, service: ExternalScalerService, port: int, host: str = "0.0.0.0",
                 workers: int = 4) -> None:
        import grpc

        self.service = service
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
        self.server.add_generic_rpc_handlers((_handlers(service),))
        try:
            bound = self.server.add_insecure_port(f"{host}:{int(port)}")
        except RuntimeError as exc:
            raise UserError(f"--keda-grpc {port}: cannot listen ({exc})") from None
        if not bound:
            raise UserError(f"--keda-grpc {port}: cannot listen (port in use?)")
        self.port = bound

    def start(self) -> KedaServer:
        self.server.start()
        return self

    def close(self, grace: float = 1.0) -> None:
        self.service.stopping.set()
        self.service.changed.set()
        self.server.stop(grace).wait(grace + 1.0)


def client_stubs(channel) -> dict[str, Callable]:
    """Callables for each method of the service on ``channel`` (for tests and tools)."""
    m = message_classes()
    out = {}
    for method, (req, resp, streaming) in METHODS.items():
        make = channel.unary_stream if streaming else channel.unary_unary
        out[method] = make(f"/{SERVICE}/{method}", request_serializer=m[req].SerializeToString,
                           response_deserializer=m[resp].FromString)
    return out


__all__ = ["ExternalScalerService", "KedaServer", "METRIC_NAME", "client_stubs",
           "file_descriptor", "message_classes"]
