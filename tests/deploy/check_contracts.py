"""Cross-file checks of the deployment artefacts that no linter knows about: the Dockerfile, the Kubernetes
manifests, the Prometheus rules, the Grafana dashboard and docs/OPERATIONS.md must agree on ports, paths, the
user id, the probes and the metric names. Run by tests/deploy_check.sh with /usr/bin/python3 (needs python3-yaml).

Usage: check_contracts.py SOURCE_DIR TMP_DIR   (exit 1 and one line per broken rule)
"""
import json
import os
import re
import shlex
import sys

import yaml

GRPC_PORT = 50051
METRICS_PORT = 9464
METRICS_PATH = "/metrics"
# kube-prometheus (the Prometheus Operator's bundle) runs Prometheus in this namespace.
KUBE_PROMETHEUS_NAMESPACE = "monitoring"
DATA_DIR = "/var/lib/accelsel"
HEALTH_SERVICE = "accelsel.v1.AcceleratorSelector"
ENTRYPOINT_SCRIPT = "/usr/local/bin/accelsel-entrypoint"
TOKEN_MIN_CHARS = 16

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)


def dockerfile_instructions(path):
    """Returns [(INSTRUCTION, argument text)] with line continuations joined and comments dropped."""
    out, current = [], ""
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def check_dockerfile(src):
    inst = dockerfile_instructions(os.path.join(src, "Dockerfile"))
    froms = [a for i, a in inst if i == "FROM"]
    check(len(froms) >= 2, "Dockerfile: expected a multi-stage build (two FROM lines)")
    check(all(re.match(r"debian:bookworm(-slim)?(@|\s|$)", f) for f in froms),
          f"Dockerfile: every stage must be Debian 12 (bookworm), got {froms}")
    check(froms and froms[-1].startswith("debian:bookworm-slim"), "Dockerfile: the runtime stage must be bookworm-slim")

    args = {}
    for i, a in inst:
        if i == "ARG" and "=" in a:
            name, _, value = a.partition("=")
            args[name] = value.strip().strip('"')
    runtime_packages = args.get("RUNTIME_PACKAGES", "").split()
    check(runtime_packages, "Dockerfile: ARG RUNTIME_PACKAGES missing")
    check(not any(p.endswith("-dev") for p in runtime_packages),
          "Dockerfile: RUNTIME_PACKAGES must not contain -dev packages")

    # The builder's packages must be ones the Makefile's `deps` installs too, so the image builds what CI tests.
    makefile = open(os.path.join(src, "Makefile"), encoding="utf-8").read()
    make_pkgs = set(re.search(r"DEB_PACKAGES\s*:=(.*?)\n\n", makefile, re.S).group(1).replace("\\", " ").split())
    builder_run = next((a for i, a in inst if i == "RUN" and "apt-get install" in a), "")
    builder_pkgs = [w for w in shlex.split(builder_run.split("--no-install-recommends", 1)[-1].split("&&")[0])]
    check(builder_pkgs, "Dockerfile: builder apt-get install line not found")
    # ccache only speeds up a rebuild (through the builder's cache mount); it changes nothing that is built.
    stray = sorted(set(builder_pkgs) - make_pkgs - {"ccache"})
    check(not stray, f"Dockerfile: builder installs packages the Makefile does not: {stray}")

    build_run = " ".join(a for i, a in inst if i == "RUN")
    for flag in ("-DCMAKE_BUILD_TYPE=Release", "-DACCELSEL_BUILD_TESTS=OFF", "-DACCELSEL_BUILD_BENCH=OFF",
                 "runtime-deps.sh --require"):
        check(flag in build_run, f"Dockerfile: builder must run with {flag}")

    users = [a for i, a in inst if i == "USER"]
    check(users and re.fullmatch(r"\d+(:\d+)?", users[-1]) is not None and not users[-1].startswith("0"),
          f"Dockerfile: final USER must be a numeric non-root uid, got {users}")
    uid = int(users[-1].split(":")[0]) if users else None

    exposed = {int(p.split("/")[0]) for i, a in inst if i == "EXPOSE" for p in a.split()}
    check(exposed == {GRPC_PORT, METRICS_PORT}, f"Dockerfile: EXPOSE must be {GRPC_PORT} {METRICS_PORT}, got {exposed}")
    volumes = [a for i, a in inst if i == "VOLUME"]
    check(any(DATA_DIR in v for v in volumes), f"Dockerfile: VOLUME {DATA_DIR} missing")
    check(any(i == "HEALTHCHECK" and "health" in a for i, a in inst), "Dockerfile: HEALTHCHECK with a health probe missing")

    entry = next((a for i, a in inst if i == "ENTRYPOINT"), None)
    check(entry is not None, "Dockerfile: ENTRYPOINT missing")
    entry_args = json.loads(entry) if entry else []
    # The entrypoint script refuses to start without a tokens file unless ACCELSEL_INSECURE=1; it must be the
    # ENTRYPOINT, be the repository's script, and run the server with the flags that follow.
    check(entry_args[:2] == [ENTRYPOINT_SCRIPT, "/usr/local/bin/accelsel-server"],
          f"Dockerfile: ENTRYPOINT must be [{ENTRYPOINT_SCRIPT}, /usr/local/bin/accelsel-server, flags...]")
    check(any(i == "COPY" and a.split() == ["deploy/docker/entrypoint.sh", ENTRYPOINT_SCRIPT] for i, a in inst),
          f"Dockerfile: COPY deploy/docker/entrypoint.sh {ENTRYPOINT_SCRIPT} missing")
    check(os.access(os.path.join(src, "deploy", "docker", "entrypoint.sh"), os.X_OK),
          "deploy/docker/entrypoint.sh must be executable (COPY keeps its mode)")
    flags = dict(a.split("=", 1) for a in entry_args[2:] if a.startswith("--") and "=" in a)
    for i, a in inst:
        if i in ("ENTRYPOINT", "CMD", "ENV"):
            check("allow_insecure" not in a and "ACCELSEL_INSECURE" not in a,
                  f"Dockerfile: {i} must not choose insecure mode (it is the operator's explicit choice): {a}")
    check(flags.get("--listen") == f"0.0.0.0:{GRPC_PORT}", "Dockerfile: --listen must be 0.0.0.0:50051")
    check(flags.get("--metrics_listen") == f"0.0.0.0:{METRICS_PORT}", "Dockerfile: --metrics_listen must be 0.0.0.0:9464")
    check(flags.get("--data_dir") == DATA_DIR, f"Dockerfile: --data_dir must be {DATA_DIR}")
    # Paths under /opt/accelsel/data must exist in the repository's data/, which is what COPY puts there.
    copies = [a for i, a in inst if i == "COPY" and a.split()[-1] == "/opt/accelsel/data"]
    check(copies and copies[0].split()[0] == "data", "Dockerfile: COPY data /opt/accelsel/data missing")
    for flag in ("--seed_csv", "--descriptors_dir"):
        path = flags.get(flag, "")
        check(path.startswith("/opt/accelsel/data/"), f"Dockerfile: {flag} must point into /opt/accelsel/data")
        repo_path = os.path.join(src, "data", path[len("/opt/accelsel/data/"):])
        check(os.path.exists(repo_path), f"Dockerfile: {flag}={path} but {os.path.relpath(repo_path, src)} "
                                         "does not exist in the repository")

    dockerignore = open(os.path.join(src, ".dockerignore"), encoding="utf-8").read().split()
    check("data" not in dockerignore, ".dockerignore must not exclude data/ (the image ships it)")
    for needed in ("build", ".git", "var"):
        check(needed in dockerignore, f".dockerignore should exclude {needed}")
    return uid, flags, runtime_packages


def load_manifests(kdir):
    """(objects, examples) of the *.yaml files in kdir; *.example.yaml files are the examples."""
    docs = []
    examples = []
    for name in sorted(os.listdir(kdir)):
        if name.endswith((".yaml", ".yml")):
            loaded = [d for d in yaml.safe_load_all(open(os.path.join(kdir, name), encoding="utf-8")) if d]
            # *.example.yaml: templates the operator copies and fills in (the tokens Secret), never applied as is.
            (examples if ".example." in name else docs).extend(loaded)
            text = open(os.path.join(kdir, name), encoding="utf-8").read()
            where = os.path.join(kdir[kdir.rindex(os.sep + "deploy" + os.sep) + 1:], name)
            check("allow_insecure" not in text and "ACCELSEL_INSECURE" not in text,
                  f"{where}: the manifests must not start the server in insecure mode")
    return docs, examples


def check_kubernetes(src, uid, docker_flags):
    kdir = os.path.join(src, "deploy", "kubernetes")
    docs, examples = load_manifests(kdir)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)

    kustomize = [d for d in docs if d.get("kind") == "Kustomization"]
    if kustomize:
        listed = set(kustomize[0].get("resources", []))
        files = {n for n in os.listdir(kdir) if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml"
                 and ".example." not in n}
        check(listed == files, f"kustomization.yaml resources {sorted(listed)} != manifest files {sorted(files)}")

    sts_list = by_kind.get("StatefulSet", [])
    check(len(sts_list) == 1, "kubernetes: exactly one StatefulSet expected")
    if not sts_list:
        return
    sts = sts_list[0]
    spec = sts["spec"]
    check(spec.get("replicas") == 1, "StatefulSet: replicas must be 1 (RocksDB has a single writer)")
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    check(spec["selector"]["matchLabels"].items() <= pod_labels.items(), "StatefulSet: selector does not match pod labels")
    ann = spec["template"]["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(METRICS_PORT)
          and ann.get("prometheus.io/path", METRICS_PATH) == METRICS_PATH,
          f"StatefulSet: pod template needs prometheus.io/scrape, prometheus.io/port={METRICS_PORT} "
          f"(and path {METRICS_PATH}) annotations")
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, "StatefulSet: runAsNonRoot must be true")
    check(psc.get("runAsUser") == uid, f"StatefulSet: runAsUser {psc.get('runAsUser')} != Dockerfile USER {uid}")
    check(psc.get("fsGroup") == uid, "StatefulSet: fsGroup must match the image's group so the volume is writable")
    check(spec.get("serviceName") in {s["metadata"]["name"] for s in by_kind.get("Service", [])},
          "StatefulSet: serviceName must name a Service in the manifests")

    check_pod_hardening("StatefulSet", pod)
    containers = pod["containers"]
    check(len(containers) == 1, "StatefulSet: one container expected")
    c = containers[0]
    csc = c.get("securityContext", {})
    check(csc.get("readOnlyRootFilesystem") is True, "container: readOnlyRootFilesystem must be true")
    check(csc.get("allowPrivilegeEscalation") is False, "container: allowPrivilegeEscalation must be false")
    check("ALL" in csc.get("capabilities", {}).get("drop", []), "container: capabilities must drop ALL")
    res = c.get("resources", {})
    check(res.get("requests") and res.get("limits", {}).get("memory"), "container: resource requests and a memory limit")

    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}, f"container ports {ports}")
    args = dict(a.split("=", 1) for a in c.get("args", []) if a.startswith("--") and "=" in a)
    for flag in ("--listen", "--metrics_listen", "--data_dir", "--seed_csv", "--descriptors_dir"):
        check(args.get(flag) == docker_flags.get(flag),
              f"container arg {flag}={args.get(flag)} differs from the Dockerfile's {docker_flags.get(flag)}")
    env_names = set()
    for ref in c.get("envFrom", []):
        cm_name = ref.get("configMapRef", {}).get("name")
        cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == cm_name]
        check(cms, f"envFrom names ConfigMap {cm_name} which is not in the manifests")
        for cm in cms:
            env_names |= set(cm.get("data", {}))
    for a in c.get("args", []):
        for var in re.findall(r"\$\((\w+)\)", a):
            check(var in env_names, f"container arg {a} uses $({var}) which no ConfigMap defines")

    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        p = c.get(probe)
        check(p is not None and "grpc" in p, f"container: {probe} must be a native gRPC probe")
        if p and "grpc" in p:
            check(p["grpc"].get("port") == GRPC_PORT, f"{probe}: port must be {GRPC_PORT}")
            check(p["grpc"].get("service", "") in ("", HEALTH_SERVICE), f"{probe}: unknown health service name")
    if c.get("readinessProbe", {}).get("grpc"):
        check(c["readinessProbe"]["grpc"].get("service") == HEALTH_SERVICE,
              f"readinessProbe should ask for {HEALTH_SERVICE} (ready only once the selector serves)")

    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    check(mounts.get(DATA_DIR) in claims, f"{DATA_DIR} must be mounted from a volumeClaimTemplate")
    pod_volumes = {v["name"] for v in pod.get("volumes", [])}
    for path, name in mounts.items():
        check(name in claims or name in pod_volumes, f"volumeMount {path} names unknown volume {name}")

    check_tokens_secret(c, pod, examples)
    check_network_policy(src, by_kind.get("NetworkPolicy", []), pod_labels)

    services = by_kind.get("Service", [])
    main = [s for s in services if s["spec"].get("clusterIP") != "None"]
    check(main, "kubernetes: a client-facing Service is missing")
    for s in services:
        check(s["spec"]["selector"].items() <= pod_labels.items(), f"Service {s['metadata']['name']}: selector "
                                                                   "does not match the pods")
        for p in s["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            check(target in ports or target in ports.values(), f"Service {s['metadata']['name']}: targetPort {target}")
    for s in main:
        sports = {p["name"]: p["port"] for p in s["spec"]["ports"]}
        check(sports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}, f"Service ports {sports}")
    # Scrape annotations on the pods or on a Service, never both: with the usual kubernetes-pods and
    # kubernetes-service-endpoints jobs each would be a target of its own, and every series would be scraped twice.
    # The pods carry them (one target per replica); the Services must not.
    annotated = scrape_annotated(docs)
    check(len(annotated) == 1, f"kubernetes: prometheus.io/scrape must be on exactly one object (the pod template), "
                               f"found on {annotated or 'none'}: pod and Service annotations scrape every series twice")


def check_pod_hardening(where, pod):
    """The rules every pod of the manifests follows: non-root, no service-account token, no service links, every
    container with requests, a memory limit, a read-only root filesystem, no privilege escalation, no capabilities,
    and startup, liveness and readiness probes."""
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0,
          f"{where}: runAsNonRoot and a numeric non-root runAsUser")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccompProfile RuntimeDefault")
    check(pod.get("automountServiceAccountToken") is False, f"{where}: automountServiceAccountToken must be false")
    check(pod.get("enableServiceLinks") is False, f"{where}: enableServiceLinks must be false")
    for c in pod.get("containers", []):
        cw = f"{where} container {c.get('name')}"
        csc = c.get("securityContext", {})
        check(csc.get("readOnlyRootFilesystem") is True, f"{cw}: readOnlyRootFilesystem must be true")
        check(csc.get("allowPrivilegeEscalation") is False, f"{cw}: allowPrivilegeEscalation must be false")
        check("ALL" in csc.get("capabilities", {}).get("drop", []), f"{cw}: capabilities must drop ALL")
        res = c.get("resources", {})
        check(res.get("requests") and res.get("limits", {}).get("memory"), f"{cw}: resource requests and a memory "
                                                                           "limit")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            check(c.get(probe), f"{cw}: {probe} missing")


def scrape_annotated(objects):
    """Names of the objects whose own or whose pod template's annotations ask for a prometheus.io scrape."""
    out = []
    for d in objects:
        where = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if "prometheus.io/scrape" in (d.get("metadata", {}).get("annotations") or {}):
            out.append(where)
        template = (d.get("spec") or {}).get("template") or {}
        if "prometheus.io/scrape" in ((template.get("metadata") or {}).get("annotations") or {}):
            out.append(where + " pod template")
    return out


def json_pointer_remove(doc, pointer):
    """RFC 6902 "remove": False when the path does not exist (kustomize then fails)."""
    keys = [k.replace("~1", "/").replace("~0", "~") for k in pointer.lstrip("/").split("/")]
    for k in keys[:-1]:
        if isinstance(doc, list):
            doc = doc[int(k)] if k.isdigit() and int(k) < len(doc) else None
        else:
            doc = (doc or {}).get(k)
        if doc is None:
            return False
    if isinstance(doc, dict) and keys[-1] in doc:
        del doc[keys[-1]]
        return True
    return False


def check_kube_prometheus(src, tmp_dir):
    """deploy/kube-prometheus: the base manifests plus a ServiceMonitor and a PrometheusRule, minus the pods' scrape
    annotations (ServiceMonitor or annotations, never both). The ServiceMonitor must reach the metrics port the
    server listens on, through the Service, from the namespace the NetworkPolicy admits; the PrometheusRule must
    carry exactly deploy/alerts.yml's rules."""
    import copy
    odir = os.path.join(src, "deploy", "kube-prometheus")
    base = [d for d in load_manifests(os.path.join(src, "deploy", "kubernetes"))[0]
            if d.get("kind") != "Kustomization"]
    kust = yaml.safe_load(open(os.path.join(odir, "kustomization.yaml"), encoding="utf-8"))
    files = {n for n in os.listdir(odir) if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml"}
    resources = kust.get("resources", [])
    check("../kubernetes" in resources, "deploy/kube-prometheus/kustomization.yaml must build on ../kubernetes")
    check(set(resources) - {"../kubernetes"} == files,
          f"deploy/kube-prometheus/kustomization.yaml resources {resources} != its files {sorted(files)}")
    objects = copy.deepcopy(base)
    for name in sorted(files):
        objects += [d for d in yaml.safe_load_all(open(os.path.join(odir, name), encoding="utf-8")) if d]
    # Apply the overlay's JSON 6902 patches the way kustomize does (kubectl kustomize is checked too when installed).
    for patch in kust.get("patches", []):
        target = patch.get("target", {})
        ops = yaml.safe_load(patch.get("patch", "")) or []
        check(isinstance(ops, list), "deploy/kube-prometheus: only JSON 6902 patches (a list of ops) are understood")
        matched = [d for d in objects if d.get("kind") == target.get("kind")
                   and d["metadata"]["name"] == target.get("name")]
        check(len(matched) == 1, f"deploy/kube-prometheus: patch target {target} matches {len(matched)} objects")
        for d in matched:
            for op in ops if isinstance(ops, list) else []:
                check(op.get("op") == "remove" and json_pointer_remove(d, op.get("path", "")),
                      f"deploy/kube-prometheus: patch op {op} does not apply to {target.get('kind')}")
    annotated = scrape_annotated(objects)
    check(not annotated, f"deploy/kube-prometheus: the ServiceMonitor replaces the prometheus.io annotations, but "
                         f"{annotated} still carry them (every series would be scraped twice)")
    rendered = os.path.join(tmp_dir, "kube-prometheus-rendered.yaml")
    if os.path.exists(rendered):  # written by tests/deploy_check.sh with `kubectl kustomize`
        built = [d for d in yaml.safe_load_all(open(rendered, encoding="utf-8")) if d]
        annotated = scrape_annotated(built)
        check(not annotated, f"kubectl kustomize deploy/kube-prometheus: {annotated} still carry prometheus.io/scrape")
        kinds = sorted(d["kind"] for d in built)
        check(kinds == sorted(d["kind"] for d in objects),
              f"kubectl kustomize deploy/kube-prometheus gives {kinds}, expected {sorted(d['kind'] for d in objects)}")

    by_kind = {}
    for d in objects:
        by_kind.setdefault(d.get("kind"), []).append(d)
    monitors = by_kind.get("ServiceMonitor", [])
    check(len(monitors) == 1, "deploy/kube-prometheus: exactly one ServiceMonitor expected")
    sts = by_kind.get("StatefulSet", [])
    if len(monitors) != 1 or len(sts) != 1:
        return
    sm = monitors[0]["spec"]
    check(not sm.get("namespaceSelector"), "ServiceMonitor: no namespaceSelector (the Service is in its namespace)")
    want = sm.get("selector", {}).get("matchLabels", {})
    check(want and not sm["selector"].get("matchExpressions"), "ServiceMonitor: select the Service by matchLabels")
    selected = [s for s in by_kind.get("Service", [])
                if want and want.items() <= s["metadata"].get("labels", {}).items()]
    container = sts[0]["spec"]["template"]["spec"]["containers"][0]
    cports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    args = dict(a.split("=", 1) for a in container.get("args", []) if a.startswith("--") and "=" in a)
    listen_port = int(args.get("--metrics_listen", ":0").rsplit(":", 1)[1] or 0)
    endpoints = sm.get("endpoints", [])
    check(len(endpoints) == 1, "ServiceMonitor: one endpoint (the metrics port) expected")
    for ep in endpoints:
        check("targetPort" not in ep and ep.get("port") == "metrics",
              "ServiceMonitor: the endpoint must name the Service's port \"metrics\" (port:, not targetPort:)")
        check(ep.get("path", "/metrics") == METRICS_PATH, f"ServiceMonitor: path must be {METRICS_PATH}")
        check(ep.get("scheme", "http") == "http", "ServiceMonitor: the server's metrics endpoint is plain http")
        with_port = [s for s in selected if any(p.get("name") == ep.get("port") for p in s["spec"]["ports"])]
        check(len(with_port) == 1, f"ServiceMonitor: its selector must pick exactly one Service with a port named "
                                   f"{ep.get('port')!r}, got {[s['metadata']['name'] for s in with_port]}")
        for s in with_port:
            sp = next(p for p in s["spec"]["ports"] if p.get("name") == ep.get("port"))
            target = sp.get("targetPort", sp["port"])
            target = cports.get(target, target)
            check(target == METRICS_PORT == listen_port,
                  f"ServiceMonitor: Service {s['metadata']['name']} port {ep.get('port')} reaches container port "
                  f"{target}, the server's --metrics_listen port is {listen_port}, expected {METRICS_PORT}")
            # Without jobLabel the job label is the Service's name; the alerts select job=~"accelsel.*".
            job = s["metadata"].get("labels", {}).get(monitors[0]["spec"].get("jobLabel"), s["metadata"]["name"])
            check(re.fullmatch(r"accelsel.*", job) is not None,
                  f"ServiceMonitor: job label {job!r} is not matched by the alerts' job=~\"accelsel.*\"")
    # Prometheus scrapes the pods' addresses directly, so the NetworkPolicy must admit the namespace kube-prometheus
    # runs it in.
    admitted = [p["namespaceSelector"].get("matchLabels", {})
                for np in by_kind.get("NetworkPolicy", []) for rule in np["spec"].get("ingress", [])
                if METRICS_PORT in {p.get("port") for p in rule.get("ports", [])}
                for p in rule.get("from", []) if "namespaceSelector" in p]
    check({"kubernetes.io/metadata.name": KUBE_PROMETHEUS_NAMESPACE} in admitted,
          f"NetworkPolicy: port {METRICS_PORT} must admit kubernetes.io/metadata.name: {KUBE_PROMETHEUS_NAMESPACE}, "
          "the namespace kube-prometheus runs Prometheus in")

    rules = by_kind.get("PrometheusRule", [])
    check(len(rules) == 1, "deploy/kube-prometheus: exactly one PrometheusRule expected")
    alerts = yaml.safe_load(open(os.path.join(src, "deploy", "alerts.yml"), encoding="utf-8"))
    for r in rules:
        check(r.get("spec") == alerts, "PrometheusRule: spec differs from deploy/alerts.yml "
                                       "(run python3 deploy/make-prometheus-rule.py)")
        with open(os.path.join(tmp_dir, "prometheusrule_spec.yml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(r.get("spec"), f)


def check_tokens_secret(container, pod, examples):
    """--auth_tokens names a file on a read-only Secret volume that nobody may write, the Secret the example shows."""
    cargs = container.get("args", []) + container.get("command", [])
    check(not any("allow_insecure" in a for a in cargs), "container: --allow_insecure must not be passed")
    tokens = [a.split("=", 1)[1] for a in cargs if a.startswith("--auth_tokens=")]
    check(len(tokens) == 1, "container: exactly one --auth_tokens=FILE expected")
    if len(tokens) != 1:
        return
    path = tokens[0]
    mounts = [m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")]
    check(len(mounts) == 1, f"--auth_tokens={path} must lie on one volumeMount")
    if len(mounts) != 1:
        return
    mount = mounts[0]
    check(mount.get("readOnly") is True, f"volumeMount {mount['mountPath']} (tokens) must be readOnly")
    volume = next((v for v in pod.get("volumes", []) if v["name"] == mount["name"]), {})
    secret = volume.get("secret")
    check(secret is not None, f"volume {mount['name']} (tokens) must be a Secret volume")
    if secret is None:
        return
    check(secret.get("optional") is not True, "tokens Secret volume must not be optional (no Secret, no start)")
    mode = secret.get("defaultMode", 0o644)
    check(mode & 0o022 == 0, f"tokens Secret defaultMode {mode:o}: the server refuses group/world-writable files")
    rel = path[len(mount["mountPath"].rstrip("/")) + 1:]
    items = secret.get("items")
    key = next((i["key"] for i in items if i["path"] == rel), None) if items else rel
    check(key is not None, f"tokens Secret volume has no item for {rel}")
    examples = [e for e in examples if e.get("kind") == "Secret"
                and e["metadata"]["name"] == secret.get("secretName")]
    check(len(examples) == 1, f"an example Secret {secret.get('secretName')} (deploy/kubernetes/*.example.yaml) "
                              "is missing")
    if len(examples) != 1 or key is None:
        return
    text = examples[0].get("stringData", {}).get(key)
    check(text is not None, f"example Secret {secret.get('secretName')}: stringData.{key} missing")
    lines = [ln.split("#", 1)[0].split() for ln in (text or "").splitlines()]
    lines = [f for f in lines if f]
    check(lines and all(len(f) == 3 and f[1] in ("node", "operator") for f in lines),
          "example tokens must be TOKEN ROLE NODE_ID lines")
    # A placeholder the server accepted would be a working credential published in the repository.
    check(all(len(f[0]) < TOKEN_MIN_CHARS for f in lines),
          f"example tokens must be placeholders shorter than {TOKEN_MIN_CHARS} characters (refused by the server)")


def check_network_policy(src, policies, pod_labels):
    """Metrics only from the monitoring namespace, gRPC admitted, nothing else."""
    check(len(policies) == 1, "kubernetes: exactly one NetworkPolicy expected")
    if len(policies) != 1:
        return
    spec = policies[0]["spec"]
    check(spec["podSelector"].get("matchLabels", {}).items() <= pod_labels.items()
          and spec["podSelector"].get("matchLabels"), "NetworkPolicy: podSelector must select the server pods")
    check("Ingress" in spec.get("policyTypes", []), "NetworkPolicy: policyTypes must include Ingress")
    admitted = set()
    namespaces = []
    for rule in spec.get("ingress", []):
        ports = {p.get("port") for p in rule.get("ports", [])}
        check(rule.get("ports") and ports <= {GRPC_PORT, METRICS_PORT},
              f"NetworkPolicy: every rule names ports among {GRPC_PORT} and {METRICS_PORT}, got {ports}")
        admitted |= ports
        if METRICS_PORT in ports:
            peers = rule.get("from", [])
            check(peers and all(set(p) == {"namespaceSelector"} and p["namespaceSelector"].get("matchLabels")
                                for p in peers),
                  "NetworkPolicy: the metrics port must be admitted only from namespaces chosen by label")
            namespaces += [p["namespaceSelector"]["matchLabels"] for p in peers]
    check(admitted == {GRPC_PORT, METRICS_PORT}, f"NetworkPolicy: admits ports {admitted}")
    ops = open(os.path.join(src, "docs", "OPERATIONS.md"), encoding="utf-8").read()
    for labels in namespaces:
        for k, v in labels.items():
            check(f"{k}: {v}" in ops or f"{k}={v}" in ops,
                  f"docs/OPERATIONS.md must name the monitoring namespace label {k}={v}")


def selects(selector, labels):
    """A matchLabels selector (never empty) picks pods with these labels."""
    wanted = (selector or {}).get("matchLabels") or {}
    return bool(wanted) and wanted.items() <= labels.items()


def check_cluster(src, uid, docker_flags, tmp_dir):
    """deploy/kubernetes/cluster (docs/SCALE.md): three NATS JetStream servers and the accelsel replicas that publish
    to and apply from them. The replicas run the same server as the single-process StatefulSet, with its flags and
    tuning ConfigMap; the --nats URLs, the NATS routes and the TLS certificate's names agree; the replicas are Ready
    only on gRPC health (caught up); only the replicas reach NATS's client port; every Secret the pods use has an
    example and is not applied by kustomize."""
    kdir = os.path.join(src, "deploy", "kubernetes")
    cdir = os.path.join(kdir, "cluster")
    docs, examples = load_manifests(cdir)
    base_docs, base_examples = load_manifests(kdir)
    kust = [d for d in docs if d.get("kind") == "Kustomization"]
    files = {n for n in os.listdir(cdir) if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml"
             and ".example." not in n}
    check(len(kust) == 1 and set(kust[0].get("resources", [])) == files,
          f"deploy/kubernetes/cluster/kustomization.yaml resources must be its files {sorted(files)}")
    rendered = os.path.join(tmp_dir, "cluster-rendered.yaml")
    objects = [d for d in docs if d.get("kind") != "Kustomization"]
    if os.path.exists(rendered):  # written by tests/deploy_check.sh with `kubectl kustomize`
        built = [d for d in yaml.safe_load_all(open(rendered, encoding="utf-8")) if d]
        check(sorted(d["kind"] for d in built) == sorted(d["kind"] for d in objects),
              "kubectl kustomize deploy/kubernetes/cluster does not give the cluster manifests' objects")
    by_kind = {}
    for d in objects:
        by_kind.setdefault(d["kind"], []).append(d)
    named = {(d["kind"], d["metadata"]["name"]): d for d in objects}

    # The tuning ConfigMap is the single-process one, key for key.
    base_cm = {d["metadata"]["name"]: d.get("data") for d in base_docs if d.get("kind") == "ConfigMap"}
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"]["name"] in base_cm:
            check(cm.get("data") == base_cm[cm["metadata"]["name"]],
                  f"cluster ConfigMap {cm['metadata']['name']} differs from ../configmap.yaml")

    sets = by_kind.get("StatefulSet", [])
    replicas = [s for s in sets
                if s["spec"]["template"]["spec"]["containers"][0].get("image", "").startswith("accelsel")]
    nats = [s for s in sets if s not in replicas]
    check(len(replicas) == 1 and len(nats) == 1, "cluster: one accelsel StatefulSet and one NATS StatefulSet expected")
    if len(replicas) != 1 or len(nats) != 1:
        return
    rep, nsts = replicas[0], nats[0]
    check(rep["metadata"]["name"] not in {d["metadata"]["name"] for d in base_docs if d.get("kind") == "StatefulSet"},
          "cluster: the replicas' StatefulSet must not take the single-process one's name (and its volume)")
    secrets_used = []  # (pod, secret name, key)
    for sts in sets:
        name = sts["metadata"]["name"]
        spec = sts["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        check(selects(spec["selector"], labels), f"StatefulSet {name}: selector does not match its pods")
        check_pod_hardening(f"StatefulSet {name}", pod)
        check(spec.get("replicas", 1) >= 3, f"StatefulSet {name}: at least 3 replicas")
        gov = named.get(("Service", spec.get("serviceName")))
        check(gov is not None and gov["spec"].get("clusterIP") == "None",
              f"StatefulSet {name}: serviceName must be a headless Service of the manifests")
        claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        anti = pod.get("affinity", {}).get("podAntiAffinity", {})
        terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
            t.get("podAffinityTerm", {}) for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
        check(any(t.get("topologyKey") == "kubernetes.io/hostname" and selects(t.get("labelSelector"), labels)
                  for t in terms),
              f"StatefulSet {name}: anti-affinity of its pods across nodes (kubernetes.io/hostname)")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", []) if selects(p["spec"].get("selector"), labels)]
        check(len(pdbs) == 1 and pdbs[0]["spec"].get("maxUnavailable") == 1,
              f"StatefulSet {name}: one PodDisruptionBudget with maxUnavailable 1 expected")
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                check(m["name"] in claims or m["name"] in volumes, f"StatefulSet {name}: volumeMount {m['name']} "
                                                                   "names no volume")
            env = {e["name"]: e for e in c.get("env", [])}
            for e in env.values():
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    check(ref.get("optional") is not True, f"StatefulSet {name}: Secret env {e['name']} not optional")
                    secrets_used.append((name, ref["name"], ref["key"]))
            env_names = set(env)
            for ref in c.get("envFrom", []):
                cm = named.get(("ConfigMap", ref.get("configMapRef", {}).get("name")))
                check(cm is not None, f"StatefulSet {name}: envFrom names a ConfigMap that is not in the manifests")
                env_names |= set((cm or {}).get("data", {}))
            for a in c.get("args", []):
                for var in re.findall(r"\$\((\w+)\)", a):
                    check(var in env_names, f"StatefulSet {name}: arg {a} uses $({var}), which nothing defines")
        for v in volumes.values():
            if "secret" in v:
                check(v["secret"].get("optional") is not True, f"StatefulSet {name}: Secret volume {v['name']} "
                                                               "must not be optional")
                check(v["secret"].get("defaultMode", 0o644) & 0o022 == 0,
                      f"StatefulSet {name}: Secret volume {v['name']} must not be group/world-writable")
                for item in v["secret"].get("items") or []:
                    secrets_used.append((name, v["secret"]["secretName"], item["key"]))
            if "configMap" in v:
                check(("ConfigMap", v["configMap"]["name"]) in named, f"StatefulSet {name}: ConfigMap volume "
                                                                      f"{v['name']} names no ConfigMap")
    # Every Secret a pod needs has an example (never applied: kustomize lists no *.example.yaml) with that key.
    all_examples = {e["metadata"]["name"]: e for e in examples + base_examples if e.get("kind") == "Secret"}
    for sts_name, secret, key in secrets_used:
        example = all_examples.get(secret)
        check(example is not None and key in (example.get("stringData") or {}),
              f"StatefulSet {sts_name}: Secret {secret} (key {key}) has no *.example.yaml that shows it")
    check(not any(d.get("kind") == "Secret" for d in objects), "cluster: Secrets belong in *.example.yaml only")

    # NATS: routes and the replicas' --nats URLs name exactly the StatefulSet's pods through its headless Service.
    nname, nsvc, ncount = nsts["metadata"]["name"], nsts["spec"]["serviceName"], nsts["spec"]["replicas"]
    pod_names = [f"{nname}-{i}.{nsvc}" for i in range(ncount)]
    npod = nsts["spec"]["template"]["spec"]
    nc = npod["containers"][0]
    nports = {p["name"]: p["containerPort"] for p in nc.get("ports", [])}
    check(nports == {"client": 4222, "cluster": 6222, "monitor": 8222}, f"NATS container ports {nports}")
    check(nsts["spec"].get("podManagementPolicy") == "Parallel", "NATS StatefulSet: podManagementPolicy Parallel")
    config_path = next((a.split("=", 1)[1] for a in nc.get("args", []) if a.startswith("--config=")), "")
    mount = next((m for m in nc.get("volumeMounts", []) if config_path.startswith(m["mountPath"] + "/")), None)
    volume = next((v for v in npod.get("volumes", []) if mount and v["name"] == mount["name"]), {})
    cm = named.get(("ConfigMap", volume.get("configMap", {}).get("name")), {})
    conf = (cm.get("data") or {}).get(os.path.basename(config_path), "")
    check(conf, f"NATS: --config={config_path} is not a file of a ConfigMap mounted there")
    routes = re.findall(r"nats://([\w.-]+):6222", conf)
    check(routes == pod_names, f"nats.conf routes {routes} != the NATS pods {pod_names}")
    for block in ("tls", "authorization", "jetstream", "cluster"):
        check(re.search(rf"^{block}\s*\{{", conf, re.M), f"nats.conf: a {block} block is required")
    check(re.search(r"^\s*no_advertise:\s*true", conf, re.M),
          "nats.conf: no_advertise: true (advertised pod IPs are not names on the certificate)")
    store = re.search(r"store_dir:\s*(\S+)", conf)
    nclaims = {t["metadata"]["name"] for t in nsts["spec"].get("volumeClaimTemplates", [])}
    check(store and any(m["mountPath"] == store.group(1) and m["name"] in nclaims for m in nc.get("volumeMounts", [])),
          "nats.conf: JetStream's store_dir must be a volumeClaimTemplate's mount")
    nenv = {e["name"] for e in nc.get("env", [])}
    for var in re.findall(r"\$(\w+)", conf):
        check(var in nenv, f"nats.conf uses ${var}, which the NATS container's env does not set")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = (nc.get(probe) or {}).get("httpGet", {})
        check(get.get("path") == "/healthz?js-enabled-only=true" and get.get("port") in ("monitor", 8222),
              f"NATS {probe}: httpGet /healthz?js-enabled-only=true on the monitoring port")

    # The replicas: the single-process server's flags, plus cluster mode onto those pods with TLS and a password.
    rpod = rep["spec"]["template"]["spec"]
    rlabels = rep["spec"]["template"]["metadata"]["labels"]
    c = rpod["containers"][0]
    psc = rpod.get("securityContext", {})
    check(psc.get("runAsUser") == uid and psc.get("fsGroup") == uid,
          f"replicas: runAsUser and fsGroup must be the Dockerfile's USER {uid}")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}, f"replica container ports {ports}")
    args = dict(a.split("=", 1) for a in c.get("args", []) if a.startswith("--") and "=" in a)
    for flag in ("--listen", "--metrics_listen", "--data_dir", "--seed_csv", "--descriptors_dir"):
        check(args.get(flag) == docker_flags.get(flag),
              f"replica arg {flag}={args.get(flag)} differs from the Dockerfile's {docker_flags.get(flag)}")
    urls = args.get("--nats", "").split(",")
    check(urls == [f"tls://{p}:4222" for p in pod_names], f"replica --nats {urls}: tls:// to each of {pod_names}")
    check(args.get("--nats_stream_replicas") == str(ncount), f"replica --nats_stream_replicas must be {ncount}")
    check("--nats_password" not in args, "replica: the NATS password must not be an argument (it shows in ps)")
    check(args.get("--nats_user") and "nats_password" in args.get("--fromenv", "").split(",")
          and any(e["name"] == "FLAGS_nats_password" and "secretKeyRef" in e.get("valueFrom", {})
                  for e in c.get("env", [])),
          "replica: --nats_user, and the password from a Secret through --fromenv=nats_password")
    ca = args.get("--nats_tls_ca", "")
    ca_mount = next((m for m in c.get("volumeMounts", []) if ca.startswith(m["mountPath"] + "/")), None)
    ca_volume = next((v for v in rpod.get("volumes", []) if ca_mount and v["name"] == ca_mount["name"]), {})
    check(ca_mount and ca_mount.get("readOnly") and [i["key"] for i in ca_volume.get("secret", {}).get("items", [])]
          == ["ca.crt"], "replica --nats_tls_ca: read-only, only the key ca.crt of a Secret")
    nats_tls = [v for v in npod.get("volumes", []) if v.get("secret", {}).get("secretName")
                == ca_volume.get("secret", {}).get("secretName")]
    check(nats_tls and re.search(r"cert_file:\s*" + re.escape(next(m["mountPath"] for m in nc["volumeMounts"]
                                                                   if m["name"] == nats_tls[0]["name"])), conf),
          "NATS: its tls block must use the certificate from the Secret whose ca.crt the replicas trust")
    check(c.get("readinessProbe", {}).get("grpc", {}) == {"port": GRPC_PORT, "service": HEALTH_SERVICE},
          f"replica readinessProbe: gRPC health of {HEALTH_SERVICE} (NOT_SERVING until caught up with the stream)")
    for probe in ("startupProbe", "livenessProbe"):
        check("grpc" not in c.get(probe, {}), f"replica {probe}: not gRPC health, which is NOT_SERVING while a "
                                              "replica catches up (it would be killed, not left to finish)")
    check_tokens_secret(c, rpod, base_examples)
    check(scrape_annotated(objects) == [f"StatefulSet/{rep['metadata']['name']} pod template"],
          "cluster: prometheus.io/scrape on the replicas' pod template only")
    services = by_kind.get("Service", [])
    for s in services:
        sel_pods = [st for st in sets if selects({"matchLabels": s["spec"]["selector"]},
                                                 st["spec"]["template"]["metadata"]["labels"])]
        check(len(sel_pods) == 1, f"Service {s['metadata']['name']}: its selector must pick one StatefulSet's pods")
    headless = named.get(("Service", "accelsel-headless"), {})
    check(headless.get("spec", {}).get("clusterIP") == "None"
          and headless["spec"].get("publishNotReadyAddresses") is not True
          and selects({"matchLabels": headless["spec"]["selector"]}, rlabels)
          and [p["port"] for p in headless["spec"]["ports"]] == [GRPC_PORT],
          "Service accelsel-headless: headless, the replicas' gRPC port, Ready replicas only (for round_robin)")
    main = named.get(("Service", "accelsel"), {})
    check({p["name"]: p["port"] for p in main.get("spec", {}).get("ports", [])}
          == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}, "Service accelsel: the grpc and metrics ports")

    # Network: the replicas as in the single-process policy; NATS's client port from the replicas only, its routes
    # from NATS only, nothing else.
    nlabels = nsts["spec"]["template"]["metadata"]["labels"]
    policies = by_kind.get("NetworkPolicy", [])
    check_network_policy(src, [p for p in policies if selects(p["spec"]["podSelector"], rlabels)], rlabels)
    npol = [p for p in policies if selects(p["spec"]["podSelector"], nlabels)]
    check(len(npol) == 1, "cluster: exactly one NetworkPolicy selects the NATS pods")
    for p in npol:
        check("Ingress" in p["spec"].get("policyTypes", []), "NATS NetworkPolicy: policyTypes must include Ingress")
        admitted = {}
        for rule in p["spec"].get("ingress", []):
            peers = rule.get("from", [])
            for port in rule.get("ports", []):
                admitted.setdefault(port.get("port"), []).extend(peers)
            check(rule.get("ports") and peers and all(set(x) == {"podSelector"} for x in peers),
                  "NATS NetworkPolicy: every rule names ports and admits pods of this namespace only")
        check(set(admitted) == {4222, 6222}, f"NATS NetworkPolicy admits ports {sorted(admitted)}, expected 4222, 6222")
        check(all(selects(x["podSelector"], rlabels) and not selects(x["podSelector"], nlabels)
                  for x in admitted.get(4222, [])), "NATS NetworkPolicy: port 4222 from the accelsel replicas only")
        check(all(selects(x["podSelector"], nlabels) for x in admitted.get(6222, [])),
              "NATS NetworkPolicy: port 6222 from the NATS servers only")


def promql_of_dashboard(src):
    dash = json.load(open(os.path.join(src, "deploy", "grafana-dashboard.json"), encoding="utf-8"))
    check(dash.get("panels"), "grafana-dashboard.json: no panels")
    exprs = []
    # A row only groups panels: it has no query of its own, and a collapsed row carries its panels inside it.
    panels = [p for top in dash.get("panels", []) for p in ([top] if top.get("type") != "row" else top["panels"])]
    for panel in panels:
        check(panel.get("targets"), f"dashboard panel {panel.get('title')!r} has no query")
        for t in panel.get("targets", []):
            exprs.append(t["expr"])
    return exprs


def check_metric_names(src, dashboard_exprs, tmp_dir):
    """Every accelsel_* series the alerts and the dashboard read is documented in docs/OPERATIONS.md."""
    ops_path = os.path.join(src, "docs", "OPERATIONS.md")
    check(os.path.exists(ops_path), "docs/OPERATIONS.md missing")
    if not os.path.exists(ops_path):
        return
    documented = set(re.findall(r"`(accelsel_[a-z0-9_]+)", open(ops_path, encoding="utf-8").read()))
    texts = [open(os.path.join(src, "deploy", "alerts.yml"), encoding="utf-8").read()] + dashboard_exprs
    used = set()
    for text in texts:
        for name in re.findall(r"\baccelsel_[a-z0-9_]+", text):
            used.add(re.sub(r"_(bucket|count|sum)$", "", name))
    with open(os.path.join(tmp_dir, "used_metrics.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(sorted(used)) + "\n")
    undocumented = sorted(used - documented)
    check(not undocumented, f"metrics used by alerts/dashboard but not documented in docs/OPERATIONS.md: "
                            f"{undocumented}")

    # Hand the dashboard's queries to promtool as recording rules so their PromQL gets parsed.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}",
         "expr": e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")}
        for i, e in enumerate(dashboard_exprs)]}]}
    with open(os.path.join(tmp_dir, "dashboard_rules.yml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(rules, f)


def main():
    src, tmp_dir = sys.argv[1], sys.argv[2]
    uid, docker_flags, runtime_packages = check_dockerfile(src)
    check_kubernetes(src, uid, docker_flags)
    check_kube_prometheus(src, tmp_dir)
    check_cluster(src, uid, docker_flags, tmp_dir)
    check_metric_names(src, promql_of_dashboard(src), tmp_dir)
    with open(os.path.join(tmp_dir, "runtime_packages.txt"), "w", encoding="utf-8") as f:
        f.write(" ".join(runtime_packages) + "\n")
    for message in failures:
        print(f"  contract: {message}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
