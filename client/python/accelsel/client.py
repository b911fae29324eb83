"""Unary calls to accelsel: SelectAccelerator with a local fallback, the catalogue, the model, health."""
import collections
import dataclasses
import functools
import json
import os
import pkgutil
import socket
import threading
from typing import Optional, Union

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message, message_factory

from accelsel.v1 import accelsel_pb2 as pb
from accelsel.v1 import accelsel_pb2_grpc as pb_grpc

DEFAULT_TARGET = "127.0.0.1:50051"

# Codes that mean "the server cannot answer now" (down, unreachable, too slow, overloaded): select() answers these
# from its fallback instead of stalling the node. Anything else (a bad request, a missing role) is the caller's to fix
# and is raised.
FALLBACK_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.RESOURCE_EXHAUSTED})

_OBJECTIVES = {
    "e2e_latency": pb.OBJECTIVE_E2E_LATENCY, "latency": pb.OBJECTIVE_E2E_LATENCY, "ttft": pb.OBJECTIVE_TTFT,
    "tpot": pb.OBJECTIVE_TPOT, "throughput": pb.OBJECTIVE_THROUGHPUT, "cost": pb.OBJECTIVE_COST,
}

# Methods retried by gRPC itself (reads, the select among them). Retrain and the other admin calls
# that change state are never retried: a retry after a lost answer would act twice.
_RETRIED = [("accelsel.v1.AcceleratorSelector", m) for m in
            ("SelectAccelerator", "ListStrategies", "GetModelInfo")] + [("grpc.health.v1.Health", "Check")]


class AccelselError(Exception):
    """A call failed: `code` is the grpc.StatusCode, `details` the server's message (it names the field and rule).
    From the server's google.rpc error details (the grpc-status-details-bin trailer), when it sent them:
    `field_violations`, [(field, description)] of an INVALID_ARGUMENT (google.rpc.BadRequest), and
    `retry_delay_s`, the wait a RESOURCE_EXHAUSTED asks for (google.rpc.RetryInfo), else None."""

    def __init__(self, code, details, field_violations=(), retry_delay_s=None):
        super().__init__("%s: %s" % (code.name if code else "UNKNOWN", details))
        self.code = code
        self.details = details
        self.field_violations = list(field_violations)
        self.retry_delay_s = retry_delay_s


_BAD_REQUEST_URL = "type.googleapis.com/google.rpc.BadRequest"
_RETRY_INFO_URL = "type.googleapis.com/google.rpc.RetryInfo"


@functools.lru_cache(maxsize=None)
def _rpc_messages():
    """The google.rpc Status, BadRequest and RetryInfo classes, from the descriptor set the package build compiled
    from proto/google/rpc (setup.py), in a pool of their own: no clash with googleapis-common-protos' google.rpc
    in the default pool. None when the package was built without it."""
    data = pkgutil.get_data(__package__, "rpc_details.desc")
    if data is None:
        return None
    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.AddSerializedFile(f.SerializeToString())
    get_class = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22; GetPrototype before
    factory = None if get_class else message_factory.MessageFactory(pool)
    return tuple((get_class or factory.GetPrototype)(pool.FindMessageTypeByName("google.rpc." + name))
                 for name in ("Status", "BadRequest", "RetryInfo"))


def _error_details(err):
    """([(field, description)], retry delay in seconds or None) from the call's grpc-status-details-bin trailer."""
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    raw = next((v for k, v in trailers or () if k == "grpc-status-details-bin"), None)
    if not raw:
        return [], None
    try:
        classes = _rpc_messages()
        if classes is None:
            return [], None
        status_cls, bad_request_cls, retry_info_cls = classes
        violations, delay = [], None
        for detail in status_cls.FromString(raw).details:
            if detail.type_url == _BAD_REQUEST_URL:
                violations += [(v.field, v.description)
                               for v in bad_request_cls.FromString(detail.value).field_violations]
            elif detail.type_url == _RETRY_INFO_URL:
                d = retry_info_cls.FromString(detail.value).retry_delay
                delay = d.seconds + d.nanos / 1e9
        return violations, delay
    except (OSError, message.DecodeError):  # no descriptor file, or details that do not parse: the message stays
        return [], None


@dataclasses.dataclass
class Options:
    """How to reach the server. Unset target/token come from $ACCELSEL_SERVER / $ACCELSEL_TOKEN, as for the CLI."""
    target: Optional[str] = None
    token: Optional[str] = None
    # TLS: PEM bytes or a file path of the CA that signs the server certificate; None = plaintext.
    tls_ca: Optional[Union[bytes, str]] = None
    # Mutual TLS: client certificate chain and key (PEM bytes or paths); only with tls_ca.
    tls_cert: Optional[Union[bytes, str]] = None
    tls_key: Optional[Union[bytes, str]] = None
    # Deadline of one call, retries included, seconds.
    deadline_s: float = 5.0
    # Attempts per retried call (first try + retries) on UNAVAILABLE, with exponential backoff and jitter.
    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    # select() when the server cannot answer and no earlier answer for the context is cached: this strategy id
    # is returned as the only recommendation. None = raise instead.
    fallback_strategy: Optional[str] = None
    # Contexts whose last answer is kept for the fallback (least recently used dropped first).
    fallback_cache_size: int = 1024
    # Keepalive while a call is open (a long TelemetrySender stream across NAT): a ping after this long without a
    # frame from the server, seconds; not below the server's --keepalive_min_client_interval (30 s by default), or
    # it closes the connection (GOAWAY too_many_pings). 0 = no pings.
    keepalive_time_s: float = 60.0
    # A ping not answered within this closes the connection, seconds; its open calls end UNAVAILABLE.
    keepalive_timeout_s: float = 20.0

    def resolved(self):
        o = dataclasses.replace(self)
        o.target = o.target or os.environ.get("ACCELSEL_SERVER") or DEFAULT_TARGET
        if o.token is None:
            o.token = os.environ.get("ACCELSEL_TOKEN") or None
        if o.deadline_s <= 0:
            raise ValueError("deadline_s must be > 0, got %r" % o.deadline_s)
        if not 1 <= o.max_attempts <= 5:  # gRPC caps retry attempts at 5
            raise ValueError("max_attempts must be between 1 and 5, got %r" % o.max_attempts)
        if o.initial_backoff_s <= 0 or o.max_backoff_s < o.initial_backoff_s:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s")
        if (o.tls_cert is None) != (o.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if o.tls_cert is not None and o.tls_ca is None:
            raise ValueError("tls_cert needs tls_ca (a TLS connection)")
        if o.fallback_cache_size < 0:
            raise ValueError("fallback_cache_size must be >= 0")
        if o.keepalive_time_s < 0 or o.keepalive_timeout_s <= 0:
            raise ValueError("need keepalive_time_s >= 0 and keepalive_timeout_s > 0")
        return o


# The URI schemes of gRPC's resolvers: a target starting with one (and a colon) is gRPC's to read. ipv4: and ipv6:
# take a comma-separated list themselves.
_SCHEMES = ("dns", "ipv4", "ipv6", "unix", "unix-abstract", "vsock", "xds")
_LIST_SCHEMES = ("ipv4", "ipv6")
_TARGET_RULE = "give host:port, a list host:port,host:port,... of replicas, or one gRPC URI such as dns:///name:port"


def _scheme(text, schemes=_SCHEMES):
    return next((s for s in schemes if text.lower().startswith(s + ":")), None)


def _host_port(name, addresses, item):
    """(host, port, family) of one list item; family "ipv4", "ipv6" or None for a name."""
    def bad(why):
        return ValueError('%s: "%s": %s; %s' % (name, addresses, why, _TARGET_RULE))

    if not item:
        raise bad("an empty item")
    if _scheme(item):
        raise bad("a URI (%s) in a list of host:port items" % item)
    if item.startswith("["):
        close = item.find("]")
        if close < 0:
            raise bad("\"%s\" lacks its ']'" % item)
        host, rest, family = item[1:close], item[close + 1:], "ipv6"
        try:
            socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            raise bad("\"%s\" is not an IPv6 address" % host) from None
    else:
        host, colon, port = item.rpartition(":")
        if not colon:
            raise bad("\"%s\" has no port" % item)
        if ":" in host:
            raise bad("\"%s\": an IPv6 address goes in brackets, [::1]:50051" % item)
        rest, family = ":" + port, None
        try:
            socket.inet_pton(socket.AF_INET, host)
            family = "ipv4"
        except OSError:
            pass
    if not host:
        raise bad("\"%s\" has no host" % item)
    if not rest.startswith(":") or len(rest) < 2:
        raise bad("\"%s\" has no port" % item)
    port = rest[1:]
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise bad("\"%s\": the port must be 1 to 65535" % item)
    return host, port, family


def _resolve(name, host, port, family):
    """{"ipv4": [...], "ipv6": [...]}: the addresses of one item as gRPC's list form writes them."""
    if family == "ipv4":
        return {"ipv4": ["%s:%s" % (host, port)], "ipv6": []}
    if family == "ipv6":
        return {"ipv4": [], "ipv6": ["[%s]:%s" % (host, port)]}
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise LookupError('%s: cannot resolve "%s" (%s)' % (name, host, err.strerror)) from None
    out = {"ipv4": [], "ipv6": []}
    for fam, _, _, _, addr in infos:
        if fam == socket.AF_INET:
            out["ipv4"].append("%s:%s" % (addr[0], port))
        elif fam == socket.AF_INET6:
            out["ipv6"].append("[%s]:%s" % (addr[0], port))
    return out


def channel_target(addresses, name="target"):
    """The gRPC target for a server address, the C++ client's ChannelTarget (client/client.h): one "host:port" stays
    as it is; a list "10.0.0.1:50051,10.0.0.2:50051" becomes gRPC's list form "ipv4:10.0.0.1:50051,10.0.0.2:50051"
    (or "ipv6:[..]:port,..."), its host names resolved here, once (every address of a name is a replica), so it does
    not follow later DNS changes: for that give one name as "dns:///name:port", which gRPC re-resolves; a URI with a
    gRPC resolver's scheme (dns:, ipv4:, ipv6:, unix:, ...) stays as it is. A bad address raises ValueError starting
    with `name` and giving the rule; a name of a list that does not resolve, LookupError."""
    text = (addresses or "").strip()
    if not text:
        raise ValueError('%s: "%s": no address; %s' % (name, addresses, _TARGET_RULE))
    scheme = _scheme(text)
    if scheme:
        if "," in text and not _scheme(text, _LIST_SCHEMES):
            raise ValueError('%s: "%s": a %s: URI names one target, not a list; %s' %
                             (name, addresses, scheme, _TARGET_RULE))
        return text
    items = [_host_port(name, addresses, item.strip()) for item in text.split(",")]
    if len(items) == 1:
        return text
    families = {family for _, _, family in items if family}
    if len(families) > 1:
        raise ValueError('%s: "%s": IPv4 and IPv6 addresses in one list (gRPC\'s list holds one family); %s' %
                         (name, addresses, _TARGET_RULE))
    resolved = [_resolve(name, *item) for item in items]
    family = next((f for f in ("ipv4", "ipv6")
                   if (not families or f in families) and all(r[f] for r in resolved)), None)
    if family is None:
        raise ValueError('%s: "%s": some names have IPv4 addresses only, some IPv6 only (gRPC\'s list holds one '
                         'family); %s' % (name, addresses, _TARGET_RULE))
    out = []
    for r in resolved:
        out += [a for a in r[family] if a not in out]  # a replica named twice is one replica
    return family + ":" + ",".join(out)


def _pem(value):
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        data = f.read()
    if not data:
        raise ValueError("%s is empty" % value)
    return data


def _service_config(o):
    policy = {
        "maxAttempts": o.max_attempts, "initialBackoff": "%.3fs" % o.initial_backoff_s,
        "maxBackoff": "%.3fs" % o.max_backoff_s, "backoffMultiplier": 2,
        # Reads only (_RETRIED): repeating one changes nothing, and on RESOURCE_EXHAUSTED gRPC waits at least the
        # server's grpc-retry-pushback-ms before the next attempt.
        "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
    }
    names = [{"service": s, "method": m} for s, m in _RETRIED]
    config = {"methodConfig": [{"name": names, "retryPolicy": policy}]} if o.max_attempts > 1 else {}
    return json.dumps(config)


def make_channel(options):
    """A channel for resolved options: TLS when tls_ca is set, retries on UNAVAILABLE through the service config,
    calls spread over the replicas of channel_target(options.target). With TLS, the certificate of every replica of a
    list must be valid for the list's first host name as written."""
    channel_options = [("grpc.enable_retries", 1 if options.max_attempts > 1 else 0),
                       ("grpc.service_config", _service_config(options)),
                       # round_robin keeps a connection to every replica and skips one that failed, so a retried
                       # call lands on another; gRPC's default, pick_first, would send everything to one. The
                       # service config names no policy, so this applies.
                       ("grpc.lb_policy_name", "round_robin")]
    if options.keepalive_time_s > 0:
        # Pings go on while a stream sends nothing (gRPC stops after 2 without data), only while a call is open.
        channel_options += [("grpc.keepalive_time_ms", int(options.keepalive_time_s * 1000)),
                            ("grpc.keepalive_timeout_ms", int(options.keepalive_timeout_s * 1000)),
                            ("grpc.http2.max_pings_without_data", 0),
                            ("grpc.keepalive_permit_without_calls", 0)]
    target = channel_target(options.target)
    if options.tls_ca is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=_pem(options.tls_ca),
                                             private_key=_pem(options.tls_key),
                                             certificate_chain=_pem(options.tls_cert))
        written = options.target.strip()
        if target != written:
            # A list became gRPC's "ipv4:a:p,b:p", whose authority gRPC would take for the name in the certificates:
            # each replica's certificate is checked against the list's first host name as written instead.
            channel_options.append(("grpc.default_authority", written.split(",")[0].strip()))
        return grpc.secure_channel(target, creds, options=channel_options)
    return grpc.insecure_channel(target, options=channel_options)


def task_context(context=None, *, model=None, accelerator=None, count=None, prompt_tokens=None, output_tokens=None,
                 batch=None, extra=None):
    """A TaskContext from a proto, a dict in the proto's JSON mapping, and/or names and sizes. Given fields override
    the context's; descriptor fields left unset are filled by the server from its tables when it knows the name."""
    if context is None:
        ctx = pb.TaskContext()
    elif isinstance(context, pb.TaskContext):
        ctx = pb.TaskContext()
        ctx.CopyFrom(context)
    else:
        ctx = json_format.ParseDict(context, pb.TaskContext())
    if model is not None:
        ctx.model.name = model
    if accelerator is not None:
        ctx.hardware.accelerator = accelerator
    if count is not None:
        ctx.hardware.count = count
    if prompt_tokens is not None:
        ctx.workload.prompt_tokens = prompt_tokens
    if output_tokens is not None:
        ctx.workload.output_tokens = output_tokens
    if batch is not None:
        ctx.workload.batch_size = batch
    for k, v in (extra or {}).items():
        ctx.extra[k] = v
    return ctx


@dataclasses.dataclass
class Selection:
    """The answer of select(). `source` is "server", or "cache" (the last server answer for this context, with its
    decision_id cleared because this run answers no logged decision) or "default" (Options.fallback_strategy alone)
    when the server could not answer; `error` then says why."""
    response: pb.SelectAcceleratorResponse
    source: str = "server"
    error: Optional[str] = None

    @property
    def fallback(self):
        return self.source != "server"

    @property
    def recommendations(self):
        return list(self.response.recommendations)

    @property
    def best(self):
        """The first-placed strategy id, or None for an empty answer."""
        recs = self.response.recommendations
        return recs[0].strategy.id if recs else None

    @property
    def decision_id(self):
        return self.response.decision_id

    @property
    def filled_fields(self):
        """Descriptor fields the server filled from its tables (empty from a server that does not report them)."""
        try:
            return list(getattr(self.response, "filled_fields"))
        except AttributeError:
            return []


def _raise(err):
    violations, delay = _error_details(err)
    raise AccelselError(err.code(), err.details(), violations, delay) from None


class Client:
    """One client per process is enough: every method may be called from any thread (gRPC channels are
    thread-safe; the fallback cache has its own lock)."""

    def __init__(self, target=None, options=None, **kwargs):
        if options is None:
            options = Options(target=target, **kwargs)
        elif target is not None or kwargs:
            options = dataclasses.replace(options, target=target or options.target, **kwargs)
        self.options = options.resolved()
        self.channel = make_channel(self.options)
        self._selector = pb_grpc.AcceleratorSelectorStub(self.channel)
        self._admin = pb_grpc.ModelAdminStub(self.channel)
        self._health = self.channel.unary_unary("/grpc.health.v1.Health/Check",
                                                request_serializer=_encode_health_request,
                                                response_deserializer=_decode_health_response)
        self._cache = collections.OrderedDict()
        self._cache_lock = threading.Lock()

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def metadata(self):
        return (("authorization", "Bearer " + self.options.token),) if self.options.token else ()

    def _call(self, method, request, timeout=None):
        try:
            return method(request, timeout=timeout or self.options.deadline_s, metadata=self.metadata)
        except grpc.RpcError as err:
            _raise(err)

    def select(self, context=None, *, model=None, accelerator=None, count=None, prompt_tokens=None,
               output_tokens=None, batch=None, extra=None, objective="e2e_latency", candidates=(), top_k=0,
               explore=False, node_id="", max_latency_ms=None, max_cost=None, max_memory_gb=None,
               max_failure_probability=None, exclude_lossy=False, request=None, timeout=None):
        """Ranks strategies for one task. Either a ready SelectAcceleratorRequest (`request`) or the context (see
        task_context) and the knobs. When the server cannot answer (FALLBACK_CODES) the answer comes from the
        fallback, flagged in Selection.source; other errors raise AccelselError."""
        if request is None:
            request = pb.SelectAcceleratorRequest(
                context=task_context(context, model=model, accelerator=accelerator, count=count,
                                     prompt_tokens=prompt_tokens, output_tokens=output_tokens, batch=batch,
                                     extra=extra),
                objective=_OBJECTIVES[objective] if isinstance(objective, str) else objective,
                candidate_ids=list(candidates), top_k=top_k, allow_exploration=explore, node_id=node_id)
            c = request.constraints
            for name, value in (("max_latency_ms", max_latency_ms), ("max_cost", max_cost),
                                ("max_memory_gb", max_memory_gb),
                                ("max_failure_probability", max_failure_probability)):
                if value is not None:
                    setattr(c, name, value)
            c.exclude_lossy = exclude_lossy
        key = _cache_key(request)
        try:
            response = self._selector.SelectAccelerator(request, timeout=timeout or self.options.deadline_s,
                                                        metadata=self.metadata)
        except grpc.RpcError as err:
            if err.code() not in FALLBACK_CODES:
                _raise(err)
            return self._fallback(key, err)
        self._remember(key, response)
        return Selection(response)

    def _remember(self, key, response):
        if self.options.fallback_cache_size == 0:
            return
        with self._cache_lock:
            self._cache[key] = response
            self._cache.move_to_end(key)
            while len(self._cache) > self.options.fallback_cache_size:
                self._cache.popitem(last=False)

    def _fallback(self, key, err):
        why = "%s: %s" % (err.code().name, err.details())
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None:
            response = pb.SelectAcceleratorResponse()
            response.CopyFrom(cached)
            response.decision_id = ""
            return Selection(response, source="cache", error=why)
        if self.options.fallback_strategy:
            response = pb.SelectAcceleratorResponse()
            rec = response.recommendations.add(rank=1, selection_probability=1.0,
                                               evidence_layer=pb.EVIDENCE_LAYER_UNKNOWN)
            rec.strategy.id = self.options.fallback_strategy
            return Selection(response, source="default", error=why)
        _raise(err)

    def list_strategies(self, include_retired=False):
        """The whole catalogue, page by page."""
        out, token = [], ""
        while True:
            page = self._call(self._selector.ListStrategies,
                              pb.ListStrategiesRequest(page_size=1000, page_token=token,
                                                       include_retired=include_retired))
            out.extend(page.strategies)
            token = page.next_page_token
            if not token:
                return out

    def model_info(self):
        return self._call(self._selector.GetModelInfo, pb.GetModelInfoRequest())

    def retrain(self, timeout=None):
        """Operator only. Never retried (a lost answer must not train twice); allow for the training time."""
        return self._call(self._admin.Retrain, pb.RetrainRequest(), timeout=timeout or 600.0)

    def health(self, service=""):
        """True when the server (or `service`) reports SERVING."""
        return self._call(self._health, service) == 1


def _cache_key(request):
    # What the answer depends on besides the model: the task and the question asked. Exploration and node_id do
    # not change which answer is a good fallback.
    key = pb.SelectAcceleratorRequest()
    key.CopyFrom(request)
    key.allow_exploration = False
    key.node_id = ""
    return key.SerializeToString(deterministic=True)


# grpc.health.v1 is not generated here: its Python module name (grpc.health.v1) would shadow grpcio's own package.
# The two messages are one field each: HealthCheckRequest{string service = 1}, HealthCheckResponse{enum status = 1}.
def _encode_health_request(service):
    data = service.encode("utf-8")
    return (b"\x0a" + _varint(len(data)) + data) if data else b""


def _decode_health_response(data):
    i, status = 0, 0
    while i < len(data):
        tag, i = _read_varint(data, i)
        if tag == 0x08:
            status, i = _read_varint(data, i)
        elif tag & 7 == 0:
            _, i = _read_varint(data, i)
        elif tag & 7 == 2:
            n, i = _read_varint(data, i)
            i += n
        elif tag & 7 in (1, 5):
            i += 8 if tag & 7 == 1 else 4
        else:
            raise ValueError("unexpected wire type in HealthCheckResponse")
    return status


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data, i):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
