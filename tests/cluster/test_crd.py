"""The RLWorkload CRD on a real API server: it installs, validates, defaults, explains and prints.

Every invalid object below must be rejected by the API server itself (OpenAPI schema, list-type
and CEL rules), with an error that names the bad field and says what is wrong with it.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, Cluster

CRD_FILE = REPO / "crds" / "thrifty.dev_rlworkloads.yaml"
CRD_NAME = "rlworkloads.thrifty.dev"
MANIFESTS = Path(__file__).parent / "manifests"
WAIT_S = 60


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((MANIFESTS / name).read_text())


def _wait(what: str, check: Callable[[], Any], timeout: float = WAIT_S, interval: float = 0.5) -> Any:
    """Poll check() until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except AssertionError as err:  # keep the last reason for the failure message
            last = err
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> Cluster:
    """The CRD, applied server-side and Established. It stays installed: other tests need it."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    proc = cluster.kubectl(
        "wait", "--for=condition=Established", f"crd/{CRD_NAME}", f"--timeout={WAIT_S}s", check=False
    )
    assert proc.returncode == 0, f"CRD {CRD_NAME} did not become Established: {proc.stdout}{proc.stderr}"
    # Discovery (short names, categories) and the published OpenAPI lag Established a little.
    _wait(
        "the rlw short name to be served",
        lambda: cluster.kubectl("get", "rlw", "-A", check=False).returncode == 0,
    )
    return cluster


@pytest.fixture(scope="module")
def ns(crd: Cluster) -> str:
    """A namespace of this module's own, deleted at the end."""
    name = f"thrifty-crd-{uuid.uuid4().hex[:8]}"
    crd.kubectl("create", "namespace", name)
    yield name
    crd.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _create(cluster: Cluster, ns: str, obj: dict[str, Any]):
    return cluster.kubectl("create", "-n", ns, "-f", "-", "-o", "json", input=json.dumps(obj), check=False)


def _get(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "rlworkload", "-n", ns, name, "-o", "json").stdout)


# --- the CRD itself -----------------------------------------------------------------------------


def test_crd_is_established_with_names(crd: Cluster) -> None:
    obj = json.loads(crd.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert conditions.get("Established") == "True", conditions
    assert conditions.get("NamesAccepted") == "True", conditions
    assert obj["status"]["acceptedNames"]["shortNames"] == ["rlw"]
    assert set(obj["status"]["acceptedNames"]["categories"]) == {"thrifty", "all"}
    assert obj["spec"]["scope"] == "Namespaced"
    [version] = obj["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert "status" in version["subresources"]
    assert version["subresources"]["scale"] == {"specReplicasPath": ".spec.replicas.desired",
                                                "statusReplicasPath": ".status.replicas",
                                                "labelSelectorPath": ".status.selector"}


def test_crd_apply_is_idempotent(crd: Cluster) -> None:
    proc = crd.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    assert "serverside-applied" in proc.stdout


# --- invalid objects ----------------------------------------------------------------------------


def _base() -> dict[str, Any]:
    """A valid object touching every rule, with two of each list entry so indices show."""
    return {
        "apiVersion": "thrifty.dev/v1alpha1",
        "kind": "RLWorkload",
        "metadata": {"name": "bad"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "registry.k8s.io/pause:3.10"},
                        {"name": "proxy", "image": "registry.k8s.io/pause:3.10"},
                    ]
                },
            },
            "replicas": {"min": 1, "max": 10},
            "containers": [
                {"name": "app", "cpu": {"min": "100m", "max": "4"}, "memory": {"min": "128Mi", "max": "8Gi"}},
                {"name": "proxy", "cpu": {"min": "50m", "max": "1"}, "memory": {"min": "64Mi", "max": "1Gi"}},
            ],
            "slo": {"latencyP95Milliseconds": 200, "latencyQuery": "histogram_quantile(0.95, rate(x[1m]))"},
            "objective": {"energyWeight": 0.5},
            "dependencies": [{"workload": "catalog", "weight": 0.8}, {"workload": "cart", "weight": 0.2}],
            "policy": {"name": "default", "mode": "Recommend"},
        },
    }


_MISSING = object()


def _at(obj: Any, path: str | tuple[str, ...]) -> tuple[Any, str | int]:
    """The parent of a path and its last key. A path is dotted ("spec.containers.0.cpu", list
    indices as numbers) or, for keys that contain dots, a tuple of keys."""
    parts = path.split(".") if isinstance(path, str) else path
    keys: list[str | int] = [int(k) if k.isdigit() else k for k in parts]
    for key in keys[:-1]:
        obj = obj[key]
    return obj, keys[-1]


def _with(*changes: tuple[str | tuple[str, ...], Any]) -> dict[str, Any]:
    """The base object with each (dotted path, value) set, or removed where value is _MISSING."""
    obj = _base()
    for path, value in changes:
        parent, key = _at(obj, path)
        if value is _MISSING:
            del parent[key]
        else:
            parent[key] = copy.deepcopy(value)
    return obj


# (id, object, field path the error must name, fragment of the problem on the same error line)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    # metadata and unknown fields
    ("name-too-long", _with(("metadata.name", "w" * 64)), "metadata.name", "Too long: may not be more than 63"),
    ("unknown-field-typo", _with(("spec.replica", {"max": 3})), "spec.replica", "unknown field"),
    # template
    ("template-missing", _with(("spec.template", _MISSING)), "spec.template", "Required value"),
    ("template-containers-missing", _with(("spec.template.spec.containers", _MISSING)),
     "spec.template.spec.containers", "Required value"),
    ("template-containers-empty", _with(("spec.template.spec.containers", [])),
     "spec.template.spec.containers", "at least 1 item"),
    ("template-container-name-missing", _with(("spec.template.spec.containers.1.name", _MISSING)),
     "spec.template.spec.containers[1].name", "Required value"),
    ("template-container-name-invalid", _with(("spec.template.spec.containers.0.name", "App_1")),
     "spec.template.spec.containers[0].name", "should match"),
    ("template-container-duplicate", _with(("spec.template.spec.containers.1.name", "app"),
                                           ("spec.containers", [{"name": "app", "cpu": {"min": 1, "max": 2}}])),
     "spec.template.spec.containers[1]", "Duplicate value"),
    ("template-node-name", _with(("spec.template.spec.nodeName", "node-1")),
     "spec.template.spec.nodeName", "must not be set"),
    ("template-reserved-label", _with((("spec", "template", "metadata", "labels", "thrifty.dev/workload"), "x")),
     "spec.template.metadata.labels", "reserved"),
    # replicas
    ("replicas-missing", _with(("spec.replicas", _MISSING)), "spec.replicas", "Required value"),
    ("replicas-max-missing", _with(("spec.replicas.max", _MISSING)), "spec.replicas.max", "Required value"),
    ("replicas-min-above-max", _with(("spec.replicas.min", 5), ("spec.replicas.max", 3)),
     "spec.replicas.min", "must be less than or equal to max (min 5 > max 3)"),
    ("replicas-min-negative", _with(("spec.replicas.min", -1)),
     "spec.replicas.min", "should be greater than or equal to 0"),
    ("replicas-max-zero", _with(("spec.replicas.min", 0), ("spec.replicas.max", 0)),
     "spec.replicas.max", "should be greater than or equal to 1"),
    ("replicas-max-too-large", _with(("spec.replicas.max", 1001)),
     "spec.replicas.max", "should be less than or equal to 1000"),
    ("replicas-min-not-integer", _with(("spec.replicas.min", "two")),
     "spec.replicas.min", "must be of type integer"),
    ("replicas-desired-too-large", _with(("spec.replicas.desired", 1001)),
     "spec.replicas.desired", "should be less than or equal to 1000"),
    ("replicas-initial-outside", _with(("spec.replicas.initial", 11)),
     "spec.replicas.initial", "must be between min and max (1 to 10)"),
    # vertical bounds
    ("cpu-min-above-max", _with(("spec.containers.1.cpu", {"min": "1500m", "max": "1"})),
     "spec.containers[1].cpu.min", "must be less than or equal to max"),
    ("memory-min-above-max-mixed-units", _with(("spec.containers.0.memory", {"min": "2Gi", "max": "2000Mi"})),
     "spec.containers[0].memory.min", "must be less than or equal to max"),
    ("cpu-max-not-a-quantity", _with(("spec.containers.0.cpu.max", "four cores")),
     "spec.containers[0].cpu.max", "should match"),
    ("memory-min-negative", _with(("spec.containers.1.memory.min", "-64Mi")),
     "spec.containers[1].memory.min", "should match"),
    ("cpu-min-zero", _with(("spec.containers.0.cpu.min", "0")),
     "spec.containers[0].cpu.min", "must be greater than zero"),
    ("cpu-max-missing", _with(("spec.containers.0.cpu.max", _MISSING)),
     "spec.containers[0].cpu.max", "Required value"),
    ("container-without-bounds", _with(("spec.containers.1", {"name": "proxy"})),
     "spec.containers[1]", "must set cpu or memory"),
    ("container-not-in-template", _with(("spec.containers.1.name", "sidecar")),
     "spec.containers", 'no container ["sidecar"] in spec.template.spec.containers'),
    ("container-duplicate", _with(("spec.containers.1.name", "app")),
     "spec.containers[1]", "Duplicate value"),
    # slo
    ("slo-latency-zero", _with(("spec.slo.latencyP95Milliseconds", 0)),
     "spec.slo.latencyP95Milliseconds", "should be greater than or equal to 1"),
    ("slo-latency-fraction", _with(("spec.slo.latencyP95Milliseconds", 150.5)),
     "spec.slo.latencyP95Milliseconds", "must be of type int32"),
    ("slo-query-blank", _with(("spec.slo.latencyQuery", "  ")),
     "spec.slo.latencyQuery", "must not be blank"),
    ("slo-query-too-long", _with(("spec.slo.latencyQuery", "up" + " " * 4095)),
     "spec.slo.latencyQuery", "Too long: may not be more than 4096"),
    # objective
    ("energy-weight-above-one", _with(("spec.objective.energyWeight", 1.5)),
     "spec.objective.energyWeight", "should be less than or equal to 1"),
    ("energy-weight-negative", _with(("spec.objective.energyWeight", -0.1)),
     "spec.objective.energyWeight", "should be greater than or equal to 0"),
    ("energy-weight-not-number", _with(("spec.objective.energyWeight", "high")),
     "spec.objective.energyWeight", "must be of type number"),
    # dependencies
    ("dependency-weight-above-one", _with(("spec.dependencies.1.weight", 1.5)),
     "spec.dependencies[1].weight", "should be less than or equal to 1"),
    ("dependency-weight-negative", _with(("spec.dependencies.0.weight", -0.5)),
     "spec.dependencies[0].weight", "should be greater than or equal to 0"),
    ("dependency-duplicate", _with(("spec.dependencies.1.workload", "catalog")),
     "spec.dependencies[1]", "Duplicate value"),
    ("dependency-on-itself", _with(("spec.dependencies.1.workload", "bad")),
     "spec.dependencies", "cannot depend on itself"),
    ("dependency-name-invalid", _with(("spec.dependencies.0.workload", "Catalog_DB")),
     "spec.dependencies[0].workload", "should match"),
    ("dependency-workload-missing", _with(("spec.dependencies.0", {"weight": 0.5})),
     "spec.dependencies[0].workload", "Required value"),
    # policy
    ("policy-mode-unknown", _with(("spec.policy.mode", "Manual")),
     "spec.policy.mode", 'Unsupported value: "Manual"'),
    ("policy-mode-wrong-case", _with(("spec.policy.mode", "auto")),
     "spec.policy.mode", 'supported values: "Auto", "Recommend"'),
    ("policy-name-invalid", _with(("spec.policy.name", "My Policy")),
     "spec.policy.name", "should match"),
]


def _names_field(stderr: str, path: str, fragment: str) -> bool:
    """True when one line of the error names `path` (not a longer path) and contains `fragment`."""
    field = re.compile(re.escape(path) + r"(?![\w.\[/-])")
    return any(field.search(line) and fragment in line for line in stderr.splitlines())


def test_invalid_cases_are_distinct() -> None:
    ids = [case[0] for case in INVALID]
    assert len(ids) == len(set(ids)) >= 25
    bodies = [json.dumps(case[1], sort_keys=True) for case in INVALID]
    assert len(set(bodies)) == len(bodies), "two invalid cases send the same object"


def test_base_of_invalid_cases_is_valid(crd: Cluster, ns: str) -> None:
    """Each invalid case differs from this accepted object only where the case says."""
    proc = crd.kubectl("create", "-n", ns, "--dry-run=server", "-f", "-", input=json.dumps(_base()), check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("obj", "path", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_rlworkload_is_rejected(crd: Cluster, ns: str, obj: dict, path: str, fragment: str) -> None:
    proc = _create(crd, ns, obj)
    assert proc.returncode != 0, f"the API server accepted an invalid RLWorkload:\n{proc.stdout}"
    assert _names_field(proc.stderr, path, fragment), (
        f"expected an error naming {path!r} with {fragment!r}, got:\n{proc.stderr}"
    )
    name = obj["metadata"]["name"]
    assert crd.kubectl("get", "rlworkload", "-n", ns, name, check=False).returncode != 0, "it was stored"


# --- valid objects and defaults -----------------------------------------------------------------


def test_minimal_is_accepted_and_defaulted(crd: Cluster, ns: str) -> None:
    proc = _create(crd, ns, _load("rlworkload-minimal.yaml"))
    assert proc.returncode == 0, proc.stderr
    spec = _get(crd, ns, "minimal")["spec"]
    assert spec["policy"] == {"name": "default", "mode": "Recommend"}
    assert spec["objective"] == {"energyWeight": 0.5}
    assert spec["replicas"] == {"min": 1, "max": 5}
    assert "containers" not in spec and "dependencies" not in spec


def test_full_is_accepted_as_written(crd: Cluster, ns: str) -> None:
    manifest = _load("rlworkload-full.yaml")
    proc = _create(crd, ns, manifest)
    assert proc.returncode == 0, proc.stderr
    spec = _get(crd, ns, "frontend")["spec"]
    want = copy.deepcopy(manifest["spec"])
    want["dependencies"][1]["weight"] = 1  # the only default the manifest leaves out
    assert spec == want, "the API server pruned or changed a field of the full example"


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("recommend", [("spec.policy", {"mode": "Recommend"})]),
        ("auto", [("spec.policy", {"name": "bursty-v2", "mode": "Auto"})]),
        ("with-dependencies", [("spec.dependencies", [{"workload": "db", "weight": 0}, {"workload": "cache.v2"}])]),
        ("scale-to-zero", [("spec.replicas", {"min": 0, "max": 3, "initial": 0})]),
        ("equal-bounds", [("spec.replicas", {"min": 4, "max": 4}),
                          ("spec.containers", [{"name": "app", "memory": {"min": "1Gi", "max": "1024Mi"}}])]),
        ("integer-quantities", [("spec.containers", [{"name": "proxy", "cpu": {"min": 1, "max": 2}}])]),
        ("energy-only", [("spec.objective", {"energyWeight": 1})]),
        ("performance-only", [("spec.objective", {"energyWeight": 0})]),
        ("with-desired", [("spec.replicas", {"min": 1, "max": 10, "desired": 4})]),
    ],
)
def test_valid_rlworkload_is_accepted(crd: Cluster, ns: str, name: str, changes: list) -> None:
    obj = _with(*changes)
    obj["metadata"]["name"] = name
    proc = _create(crd, ns, obj)
    assert proc.returncode == 0, proc.stderr
    stored = _get(crd, ns, name)
    for path, value in changes:
        parent, key = _at(stored, path)
        assert _contains(parent[key], value), f"{path}: sent {value!r}, stored {parent[key]!r}"


def _contains(got: Any, want: Any) -> bool:
    """`got` equals `want` except for fields the API server added (defaults)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _contains(got[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_contains, got, want))
    return got == want


def test_rlworkload_without_slo_is_accepted(crd: Cluster, ns: str) -> None:
    """A worker or a batch service has no latency target: spec.slo may be left out."""
    obj = _with(("spec.slo", _MISSING))
    obj["metadata"]["name"] = "no-slo"
    proc = _create(crd, ns, obj)
    assert proc.returncode == 0, proc.stderr
    assert "slo" not in _get(crd, ns, "no-slo")["spec"]


def test_generated_name_passes_the_self_dependency_rule(crd: Cluster, ns: str) -> None:
    obj = _base()
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "gen-"
    proc = _create(crd, ns, obj)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["metadata"]["name"].startswith("gen-")


def test_status_is_ignored_on_create(crd: Cluster, ns: str) -> None:
    obj = _with(("metadata.name", "no-status"))
    obj["status"] = {"replicas": 7, "energyWatts": 1.0}
    assert _create(crd, ns, obj).returncode == 0
    assert "status" not in _get(crd, ns, "no-status")


def test_mode_can_switch_to_auto(crd: Cluster, ns: str) -> None:
    assert _create(crd, ns, _with(("metadata.name", "switch"))).returncode == 0
    crd.kubectl("patch", "rlw", "-n", ns, "switch", "--type", "merge", "-p", '{"spec":{"policy":{"mode":"Auto"}}}')
    obj = _get(crd, ns, "switch")
    assert obj["spec"]["policy"]["mode"] == "Auto"
    assert obj["metadata"]["generation"] == 2


def test_update_is_validated_too(crd: Cluster, ns: str) -> None:
    assert _create(crd, ns, _with(("metadata.name", "update"))).returncode == 0
    proc = crd.kubectl(
        "patch", "rlw", "-n", ns, "update", "--type", "merge", "-p", '{"spec":{"replicas":{"min":50}}}', check=False
    )
    assert proc.returncode != 0
    assert _names_field(proc.stderr, "spec.replicas.min",
                        "must be less than or equal to max (min 50 > max 10)"), proc.stderr


# --- status subresource, printer columns, names -------------------------------------------------

STATUS = {
    "observedGeneration": 1,
    "replicas": 3,
    "readyReplicas": 3,
    "recommendedReplicas": 2,
    "energyWatts": 42.5,
    "energyJoulesTotal": 15300.0,
    "reward": -0.125,
    "latencyP95Milliseconds": 180.5,
    "sloAttainment": 0.97,
    "containers": [
        {
            "name": "app",
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
            "recommendedRequests": {"cpu": "200m", "memory": "256Mi"},
        }
    ],
    "lastDecisions": [
        {
            "time": "2026-01-01T12:00:00Z",
            "kind": "Vertical",
            "target": "shop-abcde/app",
            "action": "cpu 250m -> 200m",
            "reason": "p95 slack 40%",
            "outcome": "Recommended",
        }
    ],
    "policy": {"name": "default", "version": "3f2a9c1", "backend": "numpy", "fallback": False},
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "WithinBounds",
            "message": "3 of 3 pods ready",
            "lastTransitionTime": "2026-01-01T12:00:00Z",
            "observedGeneration": 1,
        }
    ],
}


@pytest.fixture(scope="module")
def with_status(crd: Cluster, ns: str) -> str:
    obj = _with(("metadata.name", "shop"))
    assert _create(crd, ns, obj).returncode == 0
    crd.kubectl(
        "patch", "rlworkload", "-n", ns, "shop", "--subresource", "status", "--type", "merge",
        "-p", json.dumps({"status": STATUS}),
    )
    return "shop"


def test_status_subresource_stores_status(crd: Cluster, ns: str, with_status: str) -> None:
    assert _get(crd, ns, with_status)["status"] == STATUS


def test_spec_patch_does_not_touch_status(crd: Cluster, ns: str, with_status: str) -> None:
    crd.kubectl("patch", "rlw", "-n", ns, with_status, "--type", "merge", "-p", '{"status":{"replicas":99}}')
    assert _get(crd, ns, with_status)["status"]["replicas"] == 3


@pytest.mark.parametrize(
    ("status", "path", "fragment"),
    [
        ({"sloAttainment": 1.5}, "status.sloAttainment", "should be less than or equal to 1"),
        ({"energyWatts": -1}, "status.energyWatts", "should be greater than or equal to 0"),
        ({"lastDecisions": [{**STATUS["lastDecisions"][0], "outcome": "Done"}]},
         "status.lastDecisions[0].outcome", 'Unsupported value: "Done"'),
        ({"lastDecisions": [{**STATUS["lastDecisions"][0], "kind": "Migration"}]},
         "status.lastDecisions[0].kind", 'Unsupported value: "Migration"'),
        ({"conditions": [{**STATUS["conditions"][0], "status": "Yes"}]},
         "status.conditions[0].status", 'Unsupported value: "Yes"'),
    ],
    ids=["slo-attainment-above-one", "energy-negative", "decision-outcome", "decision-kind", "condition-status"],
)
def test_invalid_status_is_rejected(crd: Cluster, ns: str, with_status: str, status: dict, path: str,
                                    fragment: str) -> None:
    proc = crd.kubectl(
        "patch", "rlworkload", "-n", ns, with_status, "--subresource", "status", "--type", "merge",
        "-p", json.dumps({"status": status}), check=False,
    )
    assert proc.returncode != 0, "the API server accepted an invalid status"
    assert _names_field(proc.stderr, path, fragment), proc.stderr


def _table(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Headers and rows (by NAME) of `kubectl get` output; headers contain no spaces."""
    lines = text.strip().splitlines()
    headers = lines[0].split()
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        rows[cells[0]] = dict(zip(headers, cells, strict=True))
    return headers, rows


def test_printer_columns(crd: Cluster, ns: str, with_status: str) -> None:
    headers, rows = _table(crd.kubectl("get", "rlw", "-n", ns, with_status).stdout)
    assert headers == ["NAME", "REPLICAS", "MODE", "ENERGY(W)", "SLO", "AGE"]
    row = rows[with_status]
    assert (row["REPLICAS"], row["MODE"], row["ENERGY(W)"], row["SLO"]) == ("3", "Recommend", "42.5", "0.97")

    headers, rows = _table(crd.kubectl("get", "rlw", "-n", ns, with_status, "-o", "wide").stdout)
    assert headers == ["NAME", "REPLICAS", "MODE", "ENERGY(W)", "SLO", "MIN", "MAX", "P95(MS)", "POLICY", "AGE"]
    row = rows[with_status]
    assert (row["MIN"], row["MAX"], row["P95(MS)"], row["POLICY"]) == ("1", "10", "180.5", "3f2a9c1")


def test_printer_columns_before_any_status(crd: Cluster, ns: str) -> None:
    assert _create(crd, ns, _with(("metadata.name", "fresh"))).returncode == 0
    out = crd.kubectl("get", "rlw", "-n", ns, "fresh").stdout
    # Columns whose field is not set yet print as empty cells or <none>, never as an error.
    assert re.fullmatch(r"fresh\s+(<none>\s+)?Recommend\s+(<none>\s+){0,2}\d+s", out.splitlines()[1].strip()), out


def test_short_name_and_categories(crd: Cluster, ns: str, with_status: str) -> None:
    full = crd.kubectl("get", "rlworkloads.thrifty.dev", "-n", ns, "-o", "name").stdout.split()
    assert f"rlworkload.thrifty.dev/{with_status}" in full
    assert crd.kubectl("get", "rlw", "-n", ns, "-o", "name").stdout.split() == full
    # Subset, not equality: more Thrifty kinds may join the category later.
    assert set(full) <= set(crd.kubectl("get", "thrifty", "-n", ns, "-o", "name").stdout.split())
    assert f"rlworkload.thrifty.dev/{with_status}" in crd.kubectl("get", "all", "-n", ns, "-o", "name").stdout


# --- kubectl explain ----------------------------------------------------------------------------


def _explain(cluster: Cluster, field: str) -> str:
    """`kubectl explain FIELD`, with runs of white space (line wrapping) collapsed to one space."""

    def attempt() -> str:
        proc = cluster.kubectl("explain", field, check=False)
        assert proc.returncode == 0, proc.stderr.strip()
        return " ".join(proc.stdout.split())

    # The OpenAPI document the API server publishes catches up with a new CRD after a moment.
    return _wait(f"kubectl explain {field}", attempt)


def test_explain_slo(crd: Cluster) -> None:
    out = _explain(crd, "rlworkload.spec.slo")
    assert "The latency objective the workload must meet. Optional" in out
    assert "latencyP95Milliseconds" in out and "-required-" in out
    assert "latencyQuery" in out and "PromQL" in out


def test_explain_energy_weight(crd: Cluster) -> None:
    out = _explain(crd, "rlw.spec.objective.energyWeight")
    assert "FIELD: energyWeight <number>" in out
    assert "from 0 (performance only) to 1 (energy only)" in out
    assert "The default 0.5 weighs them equally" in out


def test_explain_nested_fields(crd: Cluster) -> None:
    assert "Smallest CPU request Thrifty may set" in _explain(crd, "rlworkload.spec.containers.cpu.min")
    assert "Recommend (the default)" in _explain(crd, "rlworkload.spec.policy.mode")
    assert "Relative weight" in _explain(crd, "rlworkload.spec.dependencies.weight")


def test_explain_status(crd: Cluster) -> None:
    out = _explain(crd, "rlworkload.status")
    for field in ("sloAttainment", "energyWatts", "lastDecisions", "conditions", "observedGeneration", "policy",
                  "selector", "sizingSignals"):
        assert field in out, field
    assert "Written by Thrifty only" in out
    out = _explain(crd, "rlworkload.status.lastDecisions.outcome")
    assert "Recommended" in out and "Rejected" in out
