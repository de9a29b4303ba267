"""e2e/kind, checked without a Docker engine: linters, run.sh against stand-ins, the files against the repository.

No Docker engine runs here, so run.sh never creates a real cluster in this module. What is checked instead:

- shellcheck on every e2e/kind/*.sh, actionlint (with shellcheck on its ``run:`` blocks) on the workflow,
  yamllint on every e2e/kind/*.yaml and the workflow. shellcheck and yamllint are dev dependencies;
  actionlint's PyPI wrapper downloads its binary while it builds, which cannot be had here, so actionlint
  is built with ``go install`` at ACTIONLINT_VERSION into the stack's cache, as the stack builds buf.
- run.sh itself, end to end, with docker, kind, kubectl, helm, curl and uv replaced by small scripts that
  record their calls and keep a little state (the clusters, the owner ConfigMap), on a PATH holding
  nothing else: its control flow, its refusals and the environment it hands to pytest.
- The files against each other and the repository: cluster.yaml is a kind v1alpha4 Config of the stack's
  Kubernetes minor; host ports bind 127.0.0.1 and are the manifests' NodePorts; the images are the
  Dockerfiles that exist, skaffold.yaml's artifacts and what the charts run; the README's environment
  contract is what run.sh exports; the workflow runs run.sh.
- Jaeger's and Prometheus's manifests against the local stack's real API server (server-side dry-run),
  the Prometheus configuration with promtool. The Strimzi and CloudNativePG custom resources cannot be
  dry-run without their CRDs: their fields are checked against closed sets, taken for Strimzi from the API
  model of the pinned release (the @JsonPropertyOrder of each class in io.strimzi:api 0.50.0).
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from checkout_stack import golang, versions
from checkout_stack.cache import CacheEntry
from checkout_stack.components.kubernetes import OWNER_CREATED_BY, OWNER_MARKER
from checkout_stack.stack import Stack

ROOT = Path(__file__).resolve().parents[3]
KIND_DIR = ROOT / "e2e" / "kind"
RUN_SH = KIND_DIR / "run.sh"
README = KIND_DIR / "README.md"
CLUSTER_YAML = KIND_DIR / "cluster.yaml"
KAFKA_YAML = KIND_DIR / "kafka.yaml"
POSTGRES_YAML = KIND_DIR / "postgres.yaml"
JAEGER_YAML = KIND_DIR / "jaeger.yaml"
PROMETHEUS_YAML = KIND_DIR / "prometheus.yaml"
YAMLLINT_CONFIG = KIND_DIR / ".yamllint.yaml"
WORKFLOW = ROOT / ".github" / "workflows" / "e2e-kind.yaml"
SHELL_SCRIPTS = sorted(KIND_DIR.glob("*.sh"))
YAML_FILES = [*sorted(KIND_DIR.glob("*.yaml")), WORKFLOW]

ACTIONLINT_VERSION = "1.7.12"
ACTIONLINT_PACKAGE = "github.com/rhysd/actionlint/cmd/actionlint"
CLUSTER_NAME = "checkout-e2e"
OWNER_MARK = OWNER_CREATED_BY
# Kubernetes reserves the low band of the NodePort range for fixed ports (random ones come from above it).
STATIC_NODE_PORTS = range(30000, 30086)
WAIT_S = 120

# --- small helpers ------------------------------------------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for doc in by_kind(docs, kind) if name is None or doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def dev_tool(name: str) -> Path:
    """A console script of a dev dependency: beside this interpreter (uv run and `make test` both use it)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: it is a dev dependency in pyproject.toml; run `uv sync`")
    return Path(found)


def run(*argv: str | Path, cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=WAIT_S + 60, check=False
    )


@dataclass(frozen=True)
class Script:
    """What the lint tests read out of run.sh: its settings and its one list of images."""

    text: str

    def setting(self, name: str) -> str:
        match = re.search(rf"^{name}=(\S+)$", self.text, re.MULTILINE)
        assert match, f"run.sh sets {name}"
        return match.group(1)

    @property
    def images(self) -> list[tuple[str, str]]:
        """(image name, Dockerfile) from the IMAGES array."""
        match = re.search(r"^IMAGES=\(\n(.*?)^\)", self.text, re.MULTILINE | re.DOTALL)
        assert match, "run.sh has an IMAGES=( ... ) array"
        entries = [line.strip().strip('"').split() for line in match.group(1).splitlines() if line.strip()]
        assert all(len(entry) == 2 for entry in entries), entries
        return [(name, dockerfile) for name, dockerfile in entries]

    @property
    def exported(self) -> set[str]:
        return set(re.findall(r"^export ([A-Z][A-Z0-9_]*)=", self.text, re.MULTILINE))


@pytest.fixture(scope="module")
def script() -> Script:
    return Script(RUN_SH.read_text())


def port_of(url: str) -> int:
    port = urlsplit(url if "://" in url else f"tcp://{url}").port
    assert port is not None, url
    return port


# --- linters ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def actionlint(local_stack: Stack) -> Path:
    """actionlint built at the pinned version into the stack's cache (once; later runs reuse it)."""
    settings = local_stack.settings
    entry = CacheEntry(settings.cache_dir, "actionlint", f"v{ACTIONLINT_VERSION}")
    if not entry.complete:
        try:
            golang.install(
                entry,
                packages=[ACTIONLINT_PACKAGE],
                version=ACTIONLINT_VERSION,
                log=settings.logs_dir / "setup-actionlint.log",
            )
        except golang.GoBuildError as error:
            pytest.fail(f"actionlint v{ACTIONLINT_VERSION} could not be built with `go install`: {error}")
    return entry.bin / "actionlint"


def test_the_files_exist() -> None:
    assert SHELL_SCRIPTS == [RUN_SH]
    for path in [*YAML_FILES, README, YAMLLINT_CONFIG]:
        assert path.is_file(), path
    assert RUN_SH.stat().st_mode & stat.S_IXUSR, "run.sh is executable"
    assert RUN_SH.read_text().startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in RUN_SH.read_text()


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(path: Path) -> None:
    result = run(dev_tool("shellcheck"), "--severity=style", "--shell=bash", "--external-sources", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint() -> None:
    result = run(sys.executable, "-m", "yamllint", "--strict", "-c", YAMLLINT_CONFIG, "-f", "parsable", *YAML_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_with_shellcheck(actionlint: Path) -> None:
    result = run(actionlint, "-no-color", f"-shellcheck={dev_tool('shellcheck')}", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_runs_shellcheck_on_run_blocks(actionlint: Path, tmp_path: Path) -> None:
    # The check above can fail: a `run:` block with an unquoted variable is shellcheck's SC2086.
    workflow = tmp_path / "broken.yaml"
    workflow.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo $HOME\n")
    result = run(actionlint, "-no-color", f"-shellcheck={dev_tool('shellcheck')}", workflow, cwd=tmp_path)
    assert result.returncode == 1
    assert "SC2086" in result.stdout


# --- run.sh against stand-ins -------------------------------------------------------------------------------

# The system tools run.sh uses besides the ones it is about; the stand-ins' PATH holds these and nothing else.
SYSTEM_TOOLS = [
    "bash", "env", "sed", "awk", "grep", "od", "tr", "head", "tail", "seq", "sleep", "base64",
    "mkdir", "chmod", "rm", "mv", "cp", "cat", "touch", "sort", "dirname",
]  # fmt: skip

STAND_INS = {
    "kind": r"""
echo "kind $*" >>"$STUB_STATE/calls"
clusters=$STUB_STATE/clusters
touch "$clusters"
name= kubeconfig=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --name) name=${args[i + 1]} ;;
    --kubeconfig) kubeconfig=${args[i + 1]} ;;
  esac
done
case "$1 ${2:-}" in
  "version ") echo "kind ${STUB_KIND_VERSION:-v0.30.0} go1.24.6 linux/amd64" ;;
  "get clusters") cat "$clusters" ;;
  "create cluster")
    echo "$name" >>"$clusters"
    echo "apiVersion: v1" >"$kubeconfig"
    rm -f "$STUB_STATE/owner" ;;
  "delete cluster")
    grep -vx "$name" "$clusters" >"$clusters.new" || true
    mv "$clusters.new" "$clusters"
    rm -f "$STUB_STATE/owner" ;;
  "export kubeconfig") grep -qx "$name" "$clusters" && echo "apiVersion: v1" >"$kubeconfig" ;;
  "export logs") mkdir -p "$3" ;;
  "load docker-image") ;;
  *) echo "kind stand-in: unexpected $*" >&2; exit 2 ;;
esac
""",
    "kubectl": r"""
echo "kubectl $*" >>"$STUB_STATE/calls"
all=" $* "
case $all in
  *" port-forward "*)
    echo "Forwarding from 127.0.0.1:54321 -> 5432"
    exec sleep 300 ;;
  *" get configmap checkout-e2e-owner "*)
    [[ -f $STUB_STATE/owner ]] || { echo "Error from server (NotFound)" >&2; exit 1; }
    cat "$STUB_STATE/owner" ;;
  *" create configmap checkout-e2e-owner "*)
    created= token=
    for arg in "$@"; do
      case $arg in
        --from-literal=createdBy=*) created=${arg#--from-literal=createdBy=} ;;
        --from-literal=token=*) token=${arg#--from-literal=token=} ;;
      esac
    done
    printf '%s %s' "$created" "$token" >"$STUB_STATE/owner" ;;
  *" get secret checkout-pg-superuser "*"{.data.username}"*) printf 'postgres' | base64 ;;
  *" get secret checkout-pg-superuser "*"{.data.password}"*) printf '%s' "$STUB_PG_PASSWORD" | base64 ;;
  *" apply -f - "*) cat >/dev/null ;;
  *" --dry-run=client -o yaml "*) echo "kind: Namespace" ;;
esac
exit 0
""",
    "docker": r"""
echo "docker $*" >>"$STUB_STATE/calls"
[[ $1 == info && -n ${STUB_DOCKER_DOWN:-} ]] && exit 1
exit 0
""",
    "helm": 'echo "helm $*" >>"$STUB_STATE/calls"\n',
    "skaffold": 'echo "skaffold $*" >>"$STUB_STATE/calls"\n',
    "curl": 'echo "curl $*" >>"$STUB_STATE/calls"\n',
    "uv": r"""
echo "uv $*" >>"$STUB_STATE/calls"
if [[ $1 == run && $2 == --no-project ]]; then
  shift 4
  exec "$STUB_PYTHON" "$@"
fi
if [[ $1 == run && $2 == pytest ]]; then
  shift 2
  env | grep -E '^(E2E_[A-Z0-9_]*|KUBECONFIG)=' | sort >"$STUB_STATE/pytest-env"
  printf '%s\n' "$@" >"$STUB_STATE/pytest-args"
  cp "$STUB_STATE/owner" "$STUB_STATE/owner-at-pytest"
  cp "$E2E_CLUSTER_TOKEN_FILE" "$STUB_STATE/token-at-pytest"
  exit "${STUB_PYTEST_EXIT:-0}"
fi
exit 2
""",
}
PG_PASSWORD = "p@ss/w:rd%"


@dataclass
class StandIns:
    """A PATH of stand-ins and the state they keep, to run run.sh with."""

    bin: Path
    state: Path
    run_dir: Path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {
            "PATH": str(self.bin),
            "HOME": str(self.state),
            "STUB_STATE": str(self.state),
            "STUB_PYTHON": sys.executable,
            "STUB_PG_PASSWORD": PG_PASSWORD,
            "E2E_KIND_RUN_DIR": str(self.run_dir),
            **env,
        }
        (self.state / "calls").write_text("")
        return subprocess.run(
            [str(self.bin / "bash"), str(RUN_SH), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.state,
        )

    @property
    def calls(self) -> list[str]:
        return (self.state / "calls").read_text().splitlines()

    @property
    def clusters(self) -> list[str]:
        path = self.state / "clusters"
        return path.read_text().split() if path.exists() else []

    def pytest_env(self) -> dict[str, str]:
        lines = (self.state / "pytest-env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    def remove(self, tool: str) -> None:
        (self.bin / tool).unlink()


@pytest.fixture
def stand_ins(tmp_path: Path) -> StandIns:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in SYSTEM_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run run.sh"
        (bin_dir / tool).symlink_to(found)
    for tool, body in STAND_INS.items():
        path = bin_dir / tool
        path.write_text(f"#!{bin_dir / 'bash'}\nset -euo pipefail\n{body.lstrip()}")
        path.chmod(0o755)
    return StandIns(bin_dir, state, tmp_path / "run")


def readme_contract() -> dict[str, str]:
    """Variable -> value column of the environment contract table in README.md."""
    section = README.read_text().split("## The environment contract", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|", section, re.MULTILINE)
    assert rows, "README.md has the environment contract table"
    return dict(rows)


def test_run_sh_creates_marks_builds_and_hands_the_contract_to_pytest(stand_ins: StandIns, script: Script) -> None:
    result = stand_ins.run("--", "-k", "happy path", "-x")
    assert result.returncode == 0, result.stdout + result.stderr

    # Progress lines carry the elapsed time.
    assert re.search(r"^\[ *\d+s\] creating the kind cluster checkout-e2e", result.stdout, re.MULTILINE)
    # The cluster was made from cluster.yaml with its kubeconfig in the run directory, marked, and deleted at exit.
    calls = stand_ins.calls
    kubeconfig = stand_ins.run_dir / "kubeconfig"
    assert (
        f"kind create cluster --name {CLUSTER_NAME} --config {CLUSTER_YAML} --kubeconfig {kubeconfig} --wait 180s"
    ) in calls
    token = (stand_ins.state / "token-at-pytest").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert (stand_ins.state / "owner-at-pytest").read_text() == f"{OWNER_MARK} {token}"
    assert calls[-1] == f"kind delete cluster --name {CLUSTER_NAME} --kubeconfig {kubeconfig}"
    assert stand_ins.clusters == []
    assert not (stand_ins.run_dir / "cluster-token").exists()

    # Every image built from the repository root and loaded into the node.
    refs = [f"checkout-platform/{name}:e2e" for name, _ in script.images]
    for (_, dockerfile), ref in zip(script.images, refs, strict=True):
        assert f"docker build --file {ROOT / dockerfile} --tag {ref} {ROOT}" in calls
    assert f"kind load docker-image --name {CLUSTER_NAME} {' '.join(refs)}" in calls

    # The operators pinned, the manifests of this folder applied.
    strimzi = script.setting("STRIMZI_VERSION")
    assert any(c.startswith("helm upgrade --install strimzi strimzi-kafka-operator") and strimzi in c for c in calls)
    cnpg = script.setting("CNPG_VERSION")
    assert any(c.startswith("kubectl apply --server-side") and f"cnpg-{cnpg}.yaml" in c for c in calls)
    for manifest in (KAFKA_YAML, POSTGRES_YAML, JAEGER_YAML, PROMETHEUS_YAML):
        assert any(f"-f {manifest}" in c for c in calls), manifest

    # pytest got the arguments after -- and every variable of the README's contract.
    assert (stand_ins.state / "pytest-args").read_text().splitlines() == ["e2e/platform", "-k", "happy path", "-x"]
    env = stand_ins.pytest_env()
    assert set(env) - {"E2E_KIND_RUN_DIR"} == set(readme_contract())  # less the input the test set
    assert env["E2E_TARGET"] == "kind"
    assert env["KUBECONFIG"] == str(kubeconfig)
    assert env["E2E_CLUSTER_TOKEN_FILE"] == str(stand_ins.run_dir / "cluster-token")
    assert env["E2E_IMAGE_TAG"] == "e2e"
    assert env["E2E_POSTGRES_USER"] == "postgres"
    assert env["E2E_POSTGRES_PASSWORD"] == PG_PASSWORD
    assert env["E2E_POSTGRES_HOST_DSN"] == "postgresql://postgres:p%40ss%2Fw%3Ard%25@127.0.0.1:54321/checkout"
    # The in-cluster and host addresses are the README's, literally.
    contract = readme_contract()
    for name in (
        "E2E_KAFKA_BOOTSTRAP", "E2E_KAFKA_HOST_BOOTSTRAP", "E2E_POSTGRES_HOST", "E2E_POSTGRES_PORT",
        "E2E_POSTGRES_DATABASE", "E2E_OTLP_ENDPOINT", "E2E_JAEGER_QUERY_URL", "E2E_PROMETHEUS_URL",
    ):  # fmt: skip
        assert f"`{env[name]}`" == contract[name].strip(), name


def test_run_sh_marks_the_cluster_as_the_suites_guard_expects(script: Script) -> None:
    # e2e/platform refuses a cluster without this marker (checkout_stack.platform_install checks it).
    assert ("kube-system", script.setting("OWNER_CONFIGMAP")) == OWNER_MARKER
    assert script.setting("OWNER_MARK") == OWNER_CREATED_BY


def test_run_sh_image_tag_from_the_environment(stand_ins: StandIns) -> None:
    result = stand_ins.run(E2E_IMAGE_TAG="pr-42")
    assert result.returncode == 0, result.stderr
    assert stand_ins.pytest_env()["E2E_IMAGE_TAG"] == "pr-42"
    assert any(c.startswith("kind load docker-image") and "checkout-platform/cart:pr-42" in c for c in stand_ins.calls)


def test_run_sh_returns_pytests_status_and_collects_diagnostics(stand_ins: StandIns) -> None:
    result = stand_ins.run(STUB_PYTEST_EXIT="3")
    assert result.returncode == 3
    logs = stand_ins.run_dir / "logs"
    assert (logs / "events.txt").exists()
    assert (logs / "pods-describe.txt").exists()
    assert f"kind export logs {logs / 'kind'} --name {CLUSTER_NAME}" in stand_ins.calls
    assert stand_ins.clusters == []
    assert "finished (exit 3)" in result.stdout


@pytest.mark.parametrize("tool", ["docker", "kind", "kubectl", "helm", "uv", "curl"])
def test_run_sh_names_a_missing_tool(stand_ins: StandIns, tool: str) -> None:
    stand_ins.remove(tool)
    result = stand_ins.run()
    assert result.returncode == 1
    assert f"error: {tool} is not on PATH" in result.stderr
    assert not any(c.startswith("kind create") for c in stand_ins.calls)


def test_run_sh_builds_with_skaffold_on_request(stand_ins: StandIns, script: Script) -> None:
    result = stand_ins.run("--builder", "skaffold")
    assert result.returncode == 0, result.stderr
    calls = stand_ins.calls
    output = stand_ins.run_dir / "skaffold-build.json"
    assert f"skaffold build -p kind --tag e2e --kube-context kind-{CLUSTER_NAME} --file-output {output}" in calls
    assert not any(c.startswith("docker build") for c in calls)
    refs = " ".join(f"checkout-platform/{name}:e2e" for name, _ in script.images)
    assert f"kind load docker-image --name {CLUSTER_NAME} {refs}" in calls

    stand_ins.remove("skaffold")
    result = stand_ins.run("--builder=skaffold")
    assert result.returncode == 1
    assert "error: skaffold is not on PATH" in result.stderr


def test_run_sh_says_when_the_docker_daemon_does_not_answer(stand_ins: StandIns) -> None:
    result = stand_ins.run(STUB_DOCKER_DOWN="1")
    assert result.returncode == 1
    assert "daemon does not answer" in result.stderr


def test_run_sh_leaves_a_cluster_it_did_not_create_alone(stand_ins: StandIns) -> None:
    (stand_ins.state / "clusters").write_text(f"{CLUSTER_NAME}\n")
    for args in ([], ["--reuse"], ["--delete"]):
        result = stand_ins.run(*args)
        assert result.returncode == 1, args
        assert "that this checkout did not create" in result.stderr
        assert not any(c.startswith(("kind create", "kind delete", "docker build")) for c in stand_ins.calls), args
        assert stand_ins.clusters == [CLUSTER_NAME]


def test_run_sh_refuses_a_cluster_marked_with_another_token(stand_ins: StandIns) -> None:
    (stand_ins.state / "clusters").write_text(f"{CLUSTER_NAME}\n")
    (stand_ins.state / "owner").write_text(f"{OWNER_MARK} someone-elses-token")
    stand_ins.run_dir.mkdir()
    (stand_ins.run_dir / "cluster-token").write_text("my-token")
    result = stand_ins.run("--reuse")
    assert result.returncode == 1
    assert stand_ins.clusters == [CLUSTER_NAME]


def test_run_sh_keep_reuse_and_delete(stand_ins: StandIns) -> None:
    kept = stand_ins.run("--keep")
    assert kept.returncode == 0, kept.stderr
    assert stand_ins.clusters == [CLUSTER_NAME]
    assert "is kept" in kept.stdout
    token = (stand_ins.run_dir / "cluster-token").read_text()

    reused = stand_ins.run("--reuse", "--keep", "--no-build")
    assert reused.returncode == 0, reused.stderr
    assert not any(c.startswith(("kind create", "kind delete", "docker build")) for c in stand_ins.calls)
    assert any(c.startswith("kind load docker-image") for c in stand_ins.calls)
    assert (stand_ins.run_dir / "cluster-token").read_text() == token

    # Without --reuse, a cluster this checkout left behind is recreated (with a new token).
    again = stand_ins.run("--keep")
    assert again.returncode == 0, again.stderr
    assert stand_ins.calls.index(
        f"kind delete cluster --name {CLUSTER_NAME} --kubeconfig {stand_ins.run_dir}/kubeconfig"
    ) < (next(i for i, c in enumerate(stand_ins.calls) if c.startswith("kind create")))
    assert (stand_ins.run_dir / "cluster-token").read_text() != token

    deleted = stand_ins.run("--delete")
    assert deleted.returncode == 0, deleted.stderr
    assert stand_ins.clusters == []
    assert not any(c.startswith("docker") for c in stand_ins.calls)
    nothing = stand_ins.run("--delete")
    assert nothing.returncode == 0
    assert "nothing to delete" in nothing.stdout


def test_run_sh_rejects_unknown_options(stand_ins: StandIns) -> None:
    for args, message in ((["--kep"], "unknown option '--kep'"), (["--builder", "podman"], "docker or skaffold")):
        result = stand_ins.run(*args)
        assert result.returncode == 1
        assert message in result.stderr
    assert stand_ins.run("--help").stdout.startswith("The end-to-end suite (e2e/platform) on a kind cluster")


# --- the files against each other and the repository --------------------------------------------------------

# kind v1alpha4 (sigs.k8s.io/kind@v0.30.0 pkg/apis/config/v1alpha4/types.go; kind decodes strictly).
KIND_FIELDS = {
    "Cluster": {
        "kind", "apiVersion", "name", "nodes", "networking", "featureGates", "runtimeConfig",
        "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902", "containerdConfigPatches",
        "containerdConfigPatchesJSON6902",
    },
    "Node": {
        "role", "image", "labels", "extraMounts", "extraPortMappings", "kubeadmConfigPatches",
        "kubeadmConfigPatchesJSON6902",
    },
    "PortMapping": {"containerPort", "hostPort", "listenAddress", "protocol"},
}  # fmt: skip


def test_cluster_yaml_is_a_kind_config_of_the_stacks_kubernetes(script: Script) -> None:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert set(config) <= KIND_FIELDS["Cluster"]
    assert config["name"] == CLUSTER_NAME == script.setting("CLUSTER")
    [node] = config["nodes"]
    assert set(node) <= KIND_FIELDS["Node"]
    assert node["role"] == "control-plane"
    match = re.fullmatch(r"kindest/node:v(\d+)\.(\d+)\.(\d+)@sha256:[0-9a-f]{64}", node["image"])
    assert match, f"the node image is pinned by tag and digest: {node['image']}"
    assert match.group(1, 2) == tuple(versions.KUBERNETES.split(".")[:2])
    for mapping in node["extraPortMappings"]:
        assert set(mapping) <= KIND_FIELDS["PortMapping"]
        assert mapping["listenAddress"] == "127.0.0.1", mapping
        assert mapping["protocol"] == "TCP"


def node_ports() -> dict[str, int]:
    """Every fixed NodePort of the manifests, by what it is for."""
    kafka = one(documents(KAFKA_YAML), "Kafka")
    [external] = [listener for listener in kafka["spec"]["kafka"]["listeners"] if listener["type"] == "nodeport"]
    ports = {"kafka-bootstrap": external["configuration"]["bootstrap"]["nodePort"]}
    for broker in external["configuration"]["brokers"]:
        ports[f"kafka-broker-{broker['broker']}"] = broker["nodePort"]
    for path in (JAEGER_YAML, PROMETHEUS_YAML):
        for service in by_kind(documents(path), "Service"):
            for port in service["spec"]["ports"]:
                if "nodePort" in port:
                    assert service["spec"]["type"] == "NodePort"
                    ports[service["metadata"]["name"]] = port["nodePort"]
    return ports


def test_host_ports_are_the_manifests_node_ports(script: Script) -> None:
    [node] = yaml.safe_load(CLUSTER_YAML.read_text())["nodes"]
    mapped = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    ports = node_ports()
    assert sorted(mapped) == sorted(ports.values())
    # The same number on the host: Kafka advertises it, and the URLs below name it.
    assert all(container == host for container, host in mapped.items())
    assert all(port in STATIC_NODE_PORTS for port in ports.values()), ports
    assert port_of(script.setting("KAFKA_HOST_BOOTSTRAP")) == ports["kafka-bootstrap"]
    assert script.setting("KAFKA_HOST_BOOTSTRAP").startswith("127.0.0.1:")
    assert script.setting("JAEGER_QUERY_URL") == f"http://127.0.0.1:{ports['jaeger-query-host']}"
    assert script.setting("PROMETHEUS_URL") == f"http://127.0.0.1:{ports['prometheus']}"


def dockerfiles_in_the_repository() -> set[str]:
    found = {str(p.relative_to(ROOT)) for p in ROOT.glob("services/*/Dockerfile")}
    return found | {str(p.relative_to(ROOT)) for p in ROOT.glob("checkout-operator/Dockerfile")}


def test_run_sh_builds_exactly_the_dockerfiles_that_exist(script: Script) -> None:
    assert sorted(dockerfile for _, dockerfile in script.images) == sorted(dockerfiles_in_the_repository())
    for name, dockerfile in script.images:
        assert dockerfile in (f"services/{name}/Dockerfile", f"{name}/Dockerfile"), (name, dockerfile)


def test_run_sh_builds_what_skaffold_builds(script: Script) -> None:
    skaffold = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    artifacts = [(a["image"], a["docker"]["dockerfile"], a["context"]) for a in skaffold["build"]["artifacts"]]
    ours = [(f"checkout-platform/{name}", dockerfile, ".") for name, dockerfile in script.images]
    assert sorted(artifacts) == sorted(ours)
    assert "kind" in [profile["name"] for profile in skaffold["profiles"]]


def service_catalog() -> list[str]:
    helpers = (ROOT / "charts" / "checkout-service" / "templates" / "_helpers.tpl").read_text()
    match = re.search(r'define "checkout-service\.catalog" -}}\n(.*?)\{\{- end }}', helpers, re.DOTALL)
    assert match, "the checkout-service chart's catalog"
    return list(yaml.safe_load(match.group(1)))


def render(helm: Path, chart: str, *args: str) -> list[dict[str, Any]]:
    result = run(helm, "template", "rel", ROOT / "charts" / chart, "--kube-version", versions.KUBERNETES, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.integration
def test_every_image_loaded_is_one_the_charts_run_and_prometheus_finds_it(helm: Path, script: Script) -> None:
    names = [name for name, _ in script.images]
    assert sorted(names) == sorted([*service_catalog(), "checkout-operator"])
    config = prometheus_config()
    services_job = scrape_job(config, "checkout-services")
    operator_job = scrape_job(config, "checkout-operator")
    for name in names:
        if name == "checkout-operator":
            docs = render(helm, "checkout-operator", "--set", "image.tag=e2e")
        else:
            docs = render(helm, "checkout-service", "--set", f"service.name={name}", "--set", "image.tag=e2e")
        pod = one(docs, "Deployment")["spec"]["template"]
        [container] = pod["spec"]["containers"]
        assert container["image"] == f"checkout-platform/{name}:e2e"
        port_names = {port["name"] for port in container["ports"]}
        labels = pod["metadata"]["labels"]
        if name == "checkout-operator":
            assert "metrics" in port_names
            assert keeps(operator_job, labels, "metrics")
            assert not keeps(services_job, labels, *port_names)
        else:
            assert "http" in port_names
            assert keeps(services_job, labels, "http")
            assert labels["app.kubernetes.io/component"] == name
            assert not keeps(operator_job, labels, *port_names)


def test_the_readme_contract_is_what_run_sh_exports(script: Script) -> None:
    contract = readme_contract()
    assert set(contract) == script.exported
    assert {
        "E2E_TARGET", "KUBECONFIG", "E2E_CLUSTER_TOKEN_FILE", "E2E_IMAGE_TAG", "E2E_KAFKA_BOOTSTRAP",
        "E2E_KAFKA_HOST_BOOTSTRAP", "E2E_POSTGRES_HOST", "E2E_POSTGRES_PORT", "E2E_POSTGRES_DATABASE",
        "E2E_POSTGRES_USER", "E2E_POSTGRES_PASSWORD", "E2E_POSTGRES_HOST_DSN", "E2E_OTLP_ENDPOINT",
        "E2E_JAEGER_QUERY_URL", "E2E_PROMETHEUS_URL",
    } <= set(contract)  # fmt: skip


def test_the_workflow_runs_run_sh(script: Script) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"pull_request", "push", "workflow_dispatch"}
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["env"]["KIND_VERSION"] == script.setting("KIND_VERSION")
    assert workflow["env"]["KUBECTL_VERSION"] == f"v{versions.KUBERNETES}"
    assert workflow["env"]["HELM_VERSION"] == f"v{versions.HELM}"
    [job] = workflow["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")
    assert 0 < job["timeout-minutes"] <= 90
    steps = job["steps"]
    runs = [step.get("run", "") for step in steps]
    assert any(r.startswith("bash e2e/kind/run.sh --keep") for r in runs)
    [upload] = [step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "failure()"
    assert ".run/" in upload["with"]["path"].split()
    assert "!.run/kind/kubeconfig" in upload["with"]["path"].split()
    assert upload["with"]["include-hidden-files"] is True
    assert any("kubectl get events -A" in r for r in runs)
    [delete] = [step for step in steps if step.get("run", "").strip() == "bash e2e/kind/run.sh --delete"]
    assert delete["if"] == "always()"
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]


# --- Kafka and PostgreSQL custom resources ------------------------------------------------------------------

# io.strimzi:api 0.50.0: @JsonPropertyOrder of each model class (deprecated or v1beta2-only fields left out).
STRIMZI_FIELDS = {
    "resource": {"apiVersion", "kind", "metadata", "spec"},
    "KafkaSpec": {"kafka", "entityOperator", "clusterCa", "clientsCa", "cruiseControl", "kafkaExporter",
                  "maintenanceTimeWindows"},
    "KafkaClusterSpec": {"version", "metadataVersion", "image", "listeners", "config", "authorization", "rack",
                         "brokerRackInitImage", "livenessProbe", "readinessProbe", "jvmOptions", "jmxOptions",
                         "metricsConfig", "logging", "template", "tieredStorage", "quotas"},
    "GenericKafkaListener": {"name", "port", "type", "tls", "authentication", "configuration", "networkPolicyPeers"},
    "GenericKafkaListenerConfiguration": {
        "brokerCertChainAndKey", "class", "externalTrafficPolicy", "loadBalancerSourceRanges", "bootstrap",
        "brokers", "ipFamilyPolicy", "ipFamilies", "createBootstrapService", "finalizers", "useServiceDnsDomain",
        "maxConnections", "maxConnectionCreationRate", "preferredNodePortAddressType", "publishNotReadyAddresses",
        "hostTemplate", "advertisedHostTemplate", "allocateLoadBalancerNodePorts"},
    "GenericKafkaListenerConfigurationBootstrap": {"alternativeNames", "host", "nodePort", "loadBalancerIP",
                                                   "annotations", "labels", "externalIPs"},
    "GenericKafkaListenerConfigurationBroker": {"broker", "advertisedHost", "advertisedPort", "host", "nodePort",
                                                "loadBalancerIP", "annotations", "labels", "externalIPs"},
    "KafkaNodePoolSpec": {"replicas", "storage", "roles", "resources", "jvmOptions", "template"},
    "EphemeralStorage": {"id", "sizeLimit", "type", "kraftMetadata"},
}  # fmt: skip
LISTENER_TYPES = {"internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"}
# Broker configuration Strimzi manages itself (KafkaClusterSpec.config's description): refused in `config`.
STRIMZI_FORBIDDEN_CONFIG = (
    "listeners", "advertised.", "broker.", "listener.", "host.name", "port", "inter.broker.listener.name", "sasl.",
    "ssl.", "security.", "password.", "log.dir", "zookeeper.connect", "authorizer.", "super.user", "node.id",
    "process.roles", "controller.", "metadata.log.dir",
)  # fmt: skip

# CloudNativePG Cluster (postgresql.cnpg.io/v1): the fields of ClusterSpec, BootstrapConfiguration,
# BootstrapInitDB and StorageConfiguration that this folder may use.
CNPG_FIELDS = {
    "ClusterSpec": {"instances", "imageName", "enableSuperuserAccess", "superuserSecret", "bootstrap", "storage",
                    "postgresql", "resources", "primaryUpdateStrategy", "description"},
    "BootstrapConfiguration": {"initdb"},
    "BootstrapInitDB": {"database", "owner", "secret", "encoding", "localeCollate", "localeCType", "dataChecksums"},
    "StorageConfiguration": {"size", "storageClass", "resizeInUseVolumes"},
    "PostgresConfiguration": {"parameters"},
}  # fmt: skip


def test_kafka_is_one_kraft_node_of_the_stacks_version(script: Script) -> None:
    docs = documents(KAFKA_YAML)
    assert sorted(doc["kind"] for doc in docs) == ["Kafka", "KafkaNodePool"]
    kafka, pool = one(docs, "Kafka"), one(docs, "KafkaNodePool")
    for doc in docs:
        assert doc["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert set(doc) <= STRIMZI_FIELDS["resource"]
        assert doc["metadata"]["namespace"] == "kafka"
    assert set(kafka["spec"]) <= STRIMZI_FIELDS["KafkaSpec"]
    cluster = kafka["spec"]["kafka"]
    assert set(cluster) <= STRIMZI_FIELDS["KafkaClusterSpec"]
    assert cluster["version"] == versions.KAFKA
    config = cluster["config"]
    assert config["auto.create.topics.enable"] is False
    assert not [key for key in config if key.startswith(STRIMZI_FORBIDDEN_CONFIG)]
    listeners = {listener["name"]: listener for listener in cluster["listeners"]}
    for listener in listeners.values():
        assert set(listener) <= STRIMZI_FIELDS["GenericKafkaListener"]
        assert listener["type"] in LISTENER_TYPES
        assert re.fullmatch(r"[a-z0-9]{1,11}", listener["name"])
    assert (listeners["plain"]["type"], listeners["plain"]["port"], listeners["plain"]["tls"]) == (
        "internal",
        9092,
        False,
    )
    external = listeners["external"]
    assert (external["type"], external["tls"]) == ("nodeport", False)
    configuration = external["configuration"]
    assert set(configuration) <= STRIMZI_FIELDS["GenericKafkaListenerConfiguration"]
    assert set(configuration["bootstrap"]) <= STRIMZI_FIELDS["GenericKafkaListenerConfigurationBootstrap"]
    for broker in configuration["brokers"]:
        assert set(broker) <= STRIMZI_FIELDS["GenericKafkaListenerConfigurationBroker"]
        assert broker["advertisedHost"] == "127.0.0.1"
        assert broker["advertisedPort"] == broker["nodePort"]

    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]) <= STRIMZI_FIELDS["KafkaNodePoolSpec"]
    assert pool["spec"]["replicas"] == 1 == len(configuration["brokers"])
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert set(pool["spec"]["storage"]) <= STRIMZI_FIELDS["EphemeralStorage"]
    assert configuration["brokers"][0]["broker"] == 0  # a pool's node ids start at 0

    name, namespace = kafka["metadata"]["name"], kafka["metadata"]["namespace"]
    assert script.setting("KAFKA_BOOTSTRAP") == f"{name}-kafka-bootstrap.{namespace}.svc:{listeners['plain']['port']}"
    assert f"kafka/{name} " in script.text


def test_postgres_is_one_instance_with_the_superuser_secret(script: Script) -> None:
    [cluster] = documents(POSTGRES_YAML)
    assert (cluster["apiVersion"], cluster["kind"]) == ("postgresql.cnpg.io/v1", "Cluster")
    spec = cluster["spec"]
    assert set(spec) <= CNPG_FIELDS["ClusterSpec"]
    assert set(spec["bootstrap"]) <= CNPG_FIELDS["BootstrapConfiguration"]
    assert set(spec["bootstrap"]["initdb"]) <= CNPG_FIELDS["BootstrapInitDB"]
    assert set(spec["storage"]) <= CNPG_FIELDS["StorageConfiguration"]
    assert set(spec["postgresql"]) <= CNPG_FIELDS["PostgresConfiguration"]
    assert all(isinstance(value, str) for value in spec["postgresql"]["parameters"].values())
    assert spec["instances"] == 1
    assert spec["enableSuperuserAccess"] is True
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    assert script.setting("POSTGRES_DATABASE") == spec["bootstrap"]["initdb"]["database"]
    assert script.setting("POSTGRES_HOST") == f"{name}-rw.{namespace}.svc"
    assert script.setting("POSTGRES_PORT") == "5432"
    assert script.setting("POSTGRES_SUPERUSER_SECRET") == f"{name}-superuser"
    assert f"clusters.postgresql.cnpg.io/{name} " in script.text


# --- Jaeger and Prometheus ----------------------------------------------------------------------------------


def prometheus_config() -> dict[str, Any]:
    configmap = one(documents(PROMETHEUS_YAML), "ConfigMap", "prometheus")
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["prometheus.yml"])
    return config


def scrape_job(config: dict[str, Any], name: str) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = [job for job in config["scrape_configs"] if job["job_name"] == name]
    assert len(jobs) == 1, name
    return jobs[0]


def meta_label(label: str) -> str:
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def keeps(job: dict[str, Any], labels: dict[str, str], *port_names: str) -> bool:
    """Whether the job's keep/drop rules keep a pod with these labels on one of these container ports."""
    for port in port_names:
        meta = {meta_label(k): v for k, v in labels.items()} | {"__meta_kubernetes_pod_container_port_name": port}
        kept = True
        for rule in job["relabel_configs"]:
            if rule.get("action") not in ("keep", "drop"):
                continue
            value = ";".join(meta.get(source, "") for source in rule["source_labels"])
            matched = re.fullmatch(rule.get("regex", "(.*)"), value) is not None
            kept = kept and (matched if rule["action"] == "keep" else not matched)
        if kept:
            return True
    return False


def test_prometheus_finds_the_platforms_pods_every_5s_with_exemplars(script: Script) -> None:
    docs = documents(PROMETHEUS_YAML)
    config = prometheus_config()
    assert config["global"]["scrape_interval"] == "5s"
    services = scrape_job(config, "checkout-services")
    operator = scrape_job(config, "checkout-operator")
    for job in (services, operator):
        assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
        targets = {
            rule["target_label"]: rule["source_labels"] for rule in job["relabel_configs"] if "target_label" in rule
        }
        assert targets["namespace"] == ["__meta_kubernetes_namespace"]
        assert targets["pod"] == ["__meta_kubernetes_pod_name"]
        assert targets["service"] == [meta_label("app.kubernetes.io/component")]
    assert operator["honor_labels"] is True
    part_of = {"app.kubernetes.io/part-of": "checkout-platform"}
    assert keeps(services, part_of, "http")
    assert not keeps(services, part_of, "metrics")
    assert not keeps(services, {"app.kubernetes.io/part-of": "something-else"}, "http")

    deployment = one(docs, "Deployment", "prometheus")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "--enable-feature=exemplar-storage" in container["args"]
    assert re.fullmatch(r"prom/prometheus:v3\.\d+\.\d+", container["image"])
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "prometheus"
    [rule] = one(docs, "ClusterRole")["rules"]
    assert (rule["apiGroups"], rule["resources"], sorted(rule["verbs"])) == ([""], ["pods"], ["get", "list", "watch"])
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == one(docs, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "observability"}]


def test_jaeger_is_the_stacks_release_with_otlp_http_in_the_cluster(script: Script) -> None:
    docs = documents(JAEGER_YAML)
    [container] = one(docs, "Deployment", "jaeger")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"jaegertracing/jaeger:{versions.JAEGER_V2}"
    service = one(docs, "Service", "jaeger")
    ports = {port["name"]: port["port"] for port in service["spec"]["ports"]}
    assert ports["otlp-http"] == 4318
    namespace = service["metadata"]["namespace"]
    assert script.setting("OTLP_ENDPOINT") == f"http://jaeger.{namespace}.svc:{ports['otlp-http']}"


def test_promtool_accepts_the_prometheus_configuration(local_stack: Stack, tmp_path: Path) -> None:
    # The stack's promtool is Debian's build, which leaves Kubernetes discovery out: every other part of the
    # configuration (globals, relabel rules and their regexes) is checked with the discovery block replaced by a
    # static target. (The whole file, discovery included, passed promtool of the pinned Prometheus release,
    # built once by hand from github.com/prometheus/prometheus v0.316.0; building it takes over ten minutes.)
    promtool = local_stack.prometheus.tools()["promtool"]
    if not promtool.exists():
        pytest.fail(f"promtool is missing at {promtool}: `make setup` installs it (Debian package prometheus)")
    config = prometheus_config()
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run(promtool, "check", "config", "--syntax-only", path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the real API server ------------------------------------------------------------------------------------


@pytest.fixture
def namespace(kubectl: Path, kubeconfig: Path) -> Iterator[str]:
    name = f"e2e-kind-{uuid.uuid4().hex[:8]}"
    result = run(kubectl, f"--kubeconfig={kubeconfig}", "create", "namespace", name)
    assert result.returncode == 0, result.stderr
    yield name
    run(kubectl, f"--kubeconfig={kubeconfig}", "delete", "namespace", name, "--wait=false")


def into(namespace: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents moved into a throwaway namespace (and the RBAC subjects with them)."""
    moved: list[dict[str, Any]] = json.loads(json.dumps(docs))
    for doc in moved:
        if "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespace
    return moved


def dry_run(kubectl: Path, kubeconfig: Path, docs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    stream = "\n---\n".join(yaml.safe_dump(doc) for doc in docs)
    return run(
        kubectl, f"--kubeconfig={kubeconfig}", "apply", "--dry-run=server", "-o", "name", "-f", "-", stdin=stream
    )


@pytest.mark.integration
def test_jaeger_and_prometheus_pass_the_real_api_server(kubectl: Path, kubeconfig: Path, namespace: str) -> None:
    docs = into(namespace, [*documents(JAEGER_YAML), *documents(PROMETHEUS_YAML)])
    result = dry_run(kubectl, kubeconfig, docs)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == len(docs), result.stdout


@pytest.mark.integration
def test_the_real_api_server_rejects_a_broken_deployment(kubectl: Path, kubeconfig: Path, namespace: str) -> None:
    # The dry-run above can fail: a Deployment whose selector does not match its pods' labels is refused.
    deployment = into(namespace, [one(documents(JAEGER_YAML), "Deployment", "jaeger")])[0]
    deployment["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "not-jaeger"}
    result = dry_run(kubectl, kubeconfig, [deployment])
    assert result.returncode != 0
    assert "`selector` does not match template `labels`" in result.stderr
