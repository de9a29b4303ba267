"""skaffold.yaml: schema fields, one artifact per Dockerfile, the operator chart wired to the built images, profiles.

Skaffold's own JSON schema cannot be had here: it ships only inside the skaffold Go module
(docs-v2/content/en/schemas/v4beta11.json), and the Go module proxy refuses that module. So instead of
validating against the schema file, this module carries the parts of the v4beta11 definitions that
skaffold.yaml uses, as closed sets of field names (every one of those definitions has
``additionalProperties: false`` upstream), and checks the base config and every profile's patched config
against them: a misspelt or misplaced field fails here as it would fail `skaffold diagnose`. The rest is
checked against the repository: the Dockerfiles, the example, and the operator chart (rendered with the
values skaffold would set).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from checkout_stack import versions

ROOT = Path(__file__).resolve().parents[2]
SKAFFOLD = ROOT / "skaffold.yaml"
API_VERSION = "skaffold/v4beta11"
OPERATOR_CHART = "charts/checkout-operator"
OPERATOR_IMAGE = "checkout-platform/checkout-operator"
SERVICES = ["gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart"]

# Field names of the v4beta11 definitions skaffold.yaml uses (SkaffoldConfig, Metadata, BuildConfig, TagPolicy,
# GitTagger, LocalBuild, Artifact, DockerArtifact, RenderConfig, DeployConfig, LegacyHelmDeploy, HelmRelease,
# KubectlDeploy, Profile, Activation, JSONPatch).
FIELDS: dict[str, set[str]] = {
    "SkaffoldConfig": {
        "apiVersion",
        "kind",
        "metadata",
        "requires",
        "build",
        "test",
        "manifests",
        "deploy",
        "portForward",
        "resourceSelector",
        "verify",
        "customActions",
        "profiles",
    },
    "Metadata": {"name", "labels", "annotations"},
    "BuildConfig": {
        "artifacts",
        "insecureRegistries",
        "tagPolicy",
        "platforms",
        "local",
        "googleCloudBuild",
        "cluster",
    },
    "TagPolicy": {"gitCommit", "sha256", "envTemplate", "dateTime", "customTemplate", "inputDigest"},
    "GitTagger": {"variant", "prefix", "ignoreChanges"},
    "LocalBuild": {"push", "tryImportMissing", "useDockerCLI", "useBuildkit", "concurrency"},
    "Artifact": {"image", "context", "sync", "requires", "hooks", "platforms", "runtimeType", "docker"},
    "DockerArtifact": {
        "dockerfile",
        "target",
        "buildArgs",
        "network",
        "addHost",
        "cacheFrom",
        "cacheTo",
        "cliFlags",
        "pullParent",
        "noCache",
        "squash",
        "secrets",
        "ssh",
    },
    "RenderConfig": {
        "rawYaml",
        "remoteManifests",
        "kustomize",
        "helm",
        "kpt",
        "hooks",
        "transform",
        "validate",
        "output",
    },
    "DeployConfig": {
        "docker",
        "helm",
        "kpt",
        "kubectl",
        "cloudrun",
        "kubeContext",
        "logs",
        "statusCheck",
        "statusCheckDeadlineSeconds",
        "tolerateFailuresUntilDeadline",
    },
    "LegacyHelmDeploy": {"concurrency", "releases", "flags", "hooks"},
    "HelmRelease": {
        "name",
        "chartPath",
        "remoteChart",
        "valuesFiles",
        "namespace",
        "version",
        "setValues",
        "setValueTemplates",
        "setFiles",
        "createNamespace",
        "wait",
        "recreatePods",
        "skipBuildDependencies",
        "skipTests",
        "useHelmSecrets",
        "repo",
        "upgradeOnChange",
        "overrides",
        "packaged",
        "dependsOn",
    },
    "KubectlDeploy": {"flags", "remoteManifests", "defaultNamespace", "hooks"},
    "Profile": {
        "name",
        "activation",
        "requiresAllActivations",
        "patches",
        "build",
        "test",
        "manifests",
        "deploy",
        "portForward",
        "resourceSelector",
        "verify",
        "customActions",
    },
    "Activation": {"env", "kubeContext", "command"},
    "JSONPatch": {"op", "path", "from", "value"},
}
# Which definition each nested object and list item has.
OBJECTS: dict[str, dict[str, str]] = {
    "SkaffoldConfig": {
        "metadata": "Metadata",
        "build": "BuildConfig",
        "manifests": "RenderConfig",
        "deploy": "DeployConfig",
    },
    "BuildConfig": {"tagPolicy": "TagPolicy", "local": "LocalBuild"},
    "TagPolicy": {"gitCommit": "GitTagger"},
    "Artifact": {"docker": "DockerArtifact"},
    "DeployConfig": {"helm": "LegacyHelmDeploy", "kubectl": "KubectlDeploy"},
    "Profile": {"build": "BuildConfig", "manifests": "RenderConfig", "deploy": "DeployConfig"},
}
LISTS: dict[str, dict[str, str]] = {
    "SkaffoldConfig": {"profiles": "Profile"},
    "BuildConfig": {"artifacts": "Artifact"},
    "LegacyHelmDeploy": {"releases": "HelmRelease"},
    "Profile": {"activation": "Activation", "patches": "JSONPatch"},
}
REQUIRED = {"HelmRelease": {"name"}, "Profile": {"name"}, "Artifact": {"image"}, "JSONPatch": {"path"}}


def config() -> dict[str, Any]:
    loaded = yaml.safe_load(SKAFFOLD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def field_errors(node: Any, definition: str, where: str) -> list[str]:
    """Unknown or missing fields of one object, then of the objects below it that skaffold.yaml uses."""
    if not isinstance(node, dict):
        return [f"{where}: expected an object ({definition}), got {type(node).__name__}"]
    errors = [f"{where}.{key}: not a field of {definition}" for key in sorted(set(node) - FIELDS[definition])]
    errors += [f"{where}: {definition} requires {key}" for key in sorted(REQUIRED.get(definition, set()) - set(node))]
    children = OBJECTS.get(definition, {})
    for key, child in children.items():
        if key in node:
            errors += field_errors(node[key], child, f"{where}.{key}")
    lists = LISTS.get(definition, {})
    for key, child in lists.items():
        items = node.get(key, [])
        if not isinstance(items, list):
            errors.append(f"{where}.{key}: expected a list")
            continue
        for i, item in enumerate(items):
            errors += field_errors(item, child, f"{where}.{key}[{i}]")
    return errors


def apply_patch(document: dict[str, Any], patch: dict[str, Any]) -> None:
    """Apply one JSON patch operation (RFC 6902 add / replace / remove), as skaffold applies a profile's."""
    op = patch.get("op", "replace")
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in patch["path"].split("/")[1:]]
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        index = len(target) if last == "-" else int(last)
        if op == "add":
            target.insert(index, patch["value"])
        elif op == "replace":
            target[index] = patch["value"]
        else:
            del target[index]
        return
    if op in {"replace", "remove"}:
        assert last in target, f"{patch['path']}: {op} needs an existing member"
    if op == "remove":
        del target[last]
    else:
        target[last] = patch["value"]


def with_profiles(*names: str) -> dict[str, Any]:
    """The config as skaffold sees it with the named profiles active (patches applied in order)."""
    base = config()
    profiles = {p["name"]: p for p in base.get("profiles", [])}
    result = copy.deepcopy(base)
    for name in names:
        profile = profiles[name]
        for key in ("build", "manifests", "deploy"):
            if key in profile:
                result[key] = copy.deepcopy(profile[key])
        for patch in profile.get("patches", []):
            apply_patch(result, patch)
    return result


def template_name(image: str) -> str:
    """Skaffold's template suffix for an artifact: "/" and "-" become "_"."""
    return re.sub(r"[/\-.]", "_", image)


def release() -> dict[str, Any]:
    [helm_release] = config()["deploy"]["helm"]["releases"]
    assert isinstance(helm_release, dict)
    return helm_release


# --- the schema -------------------------------------------------------------------------------------------------


def test_config_names_the_pinned_schema() -> None:
    loaded = config()
    assert loaded["apiVersion"] == API_VERSION
    assert loaded["kind"] == "Config"
    assert loaded["metadata"]["name"] == "checkout-platform"


@pytest.mark.parametrize(
    "profiles", [(), ("kind",), ("debug",), ("kind", "debug")], ids=["base", "kind", "debug", "kind+debug"]
)
def test_config_uses_only_schema_fields(profiles: tuple[str, ...]) -> None:
    assert field_errors(with_profiles(*profiles), "SkaffoldConfig", "skaffold") == []


def test_field_check_catches_a_misspelt_field() -> None:
    broken = config()
    broken["deploy"]["helm"]["releases"][0]["setValueTemplate"] = {}
    broken["build"]["local"]["pushImages"] = False
    assert field_errors(broken, "SkaffoldConfig", "skaffold") == [
        "skaffold.build.local.pushImages: not a field of LocalBuild",
        "skaffold.deploy.helm.releases[0].setValueTemplate: not a field of HelmRelease",
    ]


# --- build ------------------------------------------------------------------------------------------------------


def test_one_artifact_per_dockerfile_built_from_the_repository_root() -> None:
    artifacts = config()["build"]["artifacts"]
    dockerfiles = {a["docker"]["dockerfile"] for a in artifacts}
    found = {
        p.relative_to(ROOT).as_posix()
        for p in [*ROOT.glob("services/*/Dockerfile"), ROOT / "checkout-operator" / "Dockerfile"]
    }
    assert dockerfiles == found
    assert len(artifacts) == len(found) == 7
    for artifact in artifacts:
        assert artifact["context"] == ".", "the uv workspace (pyproject.toml, uv.lock) is at the root"
        assert (ROOT / artifact["docker"]["dockerfile"]).is_file()


def test_artifact_names_are_the_charts_default_images() -> None:
    images = {a["docker"]["dockerfile"]: a["image"] for a in config()["build"]["artifacts"]}
    assert images["checkout-operator/Dockerfile"] == OPERATOR_IMAGE
    chart_values = yaml.safe_load((ROOT / OPERATOR_CHART / "values.yaml").read_text())
    assert chart_values["image"]["repository"] == OPERATOR_IMAGE
    for service in SERVICES:
        # checkout-service's default image is checkout-platform/<service.name>.
        assert images[f"services/{service}/Dockerfile"] == f"checkout-platform/{service}"
    for image in images.values():
        assert not {".", ":"} & set(image.split("/")[0]), f"{image}: no registry host"


def test_kind_profile_builds_locally_without_pushing() -> None:
    kind = with_profiles("kind")
    assert kind["build"]["local"]["push"] is False
    assert kind["build"]["artifacts"] == config()["build"]["artifacts"]
    assert "push" not in config()["build"]["local"], "elsewhere skaffold decides (push to remote clusters)"


# --- manifests and deploy ---------------------------------------------------------------------------------------


def test_raw_manifests_are_the_example_platform() -> None:
    loaded = config()
    assert loaded["manifests"]["rawYaml"] == ["examples/checkoutplatform.yaml"]
    for path in loaded["manifests"]["rawYaml"]:
        docs = [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]
        assert {d["kind"] for d in docs} == {"CheckoutPlatform"}
    # Raw manifests are applied by the kubectl deployer, which skaffold runs after the helm one (the CRD first).
    assert list(loaded["deploy"]) == ["helm", "kubectl"]


def test_helm_release_installs_the_operator_chart() -> None:
    helm_release = release()
    assert helm_release["chartPath"] == OPERATOR_CHART
    assert (ROOT / OPERATOR_CHART / "Chart.yaml").is_file()
    assert helm_release["createNamespace"] is True
    assert helm_release["wait"] is True


def test_every_built_image_reaches_the_operator_chart() -> None:
    templates = release()["setValueTemplates"]
    expected = {
        "image.repository": f"{{{{.IMAGE_REPO_{template_name(OPERATOR_IMAGE)}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{template_name(OPERATOR_IMAGE)}}}}}",
    }
    for service in SERVICES:
        name = template_name(f"checkout-platform/{service}")
        expected[f"workloads.images.{service}.repository"] = f"{{{{.IMAGE_REPO_{name}}}}}"
        expected[f"workloads.images.{service}.tag"] = f"{{{{.IMAGE_TAG_{name}}}}}"
    assert templates == expected
    artifacts = {template_name(a["image"]) for a in config()["build"]["artifacts"]}
    referenced = {m for value in templates.values() for m in re.findall(r"\.IMAGE_(?:REPO|TAG)_(\w+)", value)}
    assert referenced == artifacts


def test_debug_profile_runs_one_replica_at_debug_level() -> None:
    [debug] = [p for p in config()["profiles"] if p["name"] == "debug"]
    assert debug["activation"] == [{"command": "debug"}]
    for profiles in (("debug",), ("kind", "debug")):
        values = with_profiles(*profiles)["deploy"]["helm"]["releases"][0]["setValues"]
        assert values == {"logLevel": "DEBUG", "replicaCount": 1}
    assert release()["setValues"] == {"logLevel": "INFO"}


def helm_set_arguments(helm_release: dict[str, Any]) -> list[str]:
    """The --set arguments skaffold would pass, with the image templates filled in as skaffold would."""
    repositories = {template_name(a["image"]): a["image"] for a in config()["build"]["artifacts"]}
    args = []
    for key, value in helm_release.get("setValues", {}).items():
        args += ["--set", f"{key}={value}"]
    for key, template in helm_release.get("setValueTemplates", {}).items():
        filled = re.sub(r"\{\{\.IMAGE_REPO_(\w+)\}\}", lambda m: repositories[m.group(1)], template)
        filled = re.sub(r"\{\{\.IMAGE_TAG_\w+\}\}", "0a1b2c3-dirty", filled)
        args += ["--set", f"{key}={filled}"]
    return args


@pytest.mark.integration
@pytest.mark.parametrize("profiles", [(), ("debug",), ("kind", "debug")], ids=["base", "debug", "kind+debug"])
def test_chart_accepts_what_skaffold_sets(helm: Path, profiles: tuple[str, ...]) -> None:
    helm_release = with_profiles(*profiles)["deploy"]["helm"]["releases"][0]
    result = subprocess.run(
        [
            str(helm),
            "template",
            helm_release["name"],
            str(ROOT / helm_release["chartPath"]),
            "--namespace",
            helm_release["namespace"],
            "--kube-version",
            versions.KUBERNETES,
            *helm_set_arguments(helm_release),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [deployment] = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{OPERATOR_IMAGE}:0a1b2c3-dirty"
    env = {e["name"]: e.get("value") for e in container["env"]}
    images = json.loads(env["WORKLOADS__IMAGES"])
    assert sorted(images) == sorted(SERVICES)
    for service in SERVICES:
        assert images[service] == {"repository": f"checkout-platform/{service}", "tag": "0a1b2c3-dirty"}
    assert env["LOG_LEVEL"] == ("DEBUG" if "debug" in profiles else "INFO")
    assert deployment["spec"]["replicas"] == 1
