"""Every pinned version of the local stack, in one place.

Changing a version here changes the cache key of that component, so the next `make setup`
builds or downloads it again and the old cache entry is left alone.
"""

from typing import Final

KUBERNETES: Final = "1.34.4"
"""kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (stack/go/kubernetes)."""

ETCD: Final = "3.6.16"
"""etcd server (stack/go/etcd)."""

KWOK: Final = "0.8.0"
"""sigs.k8s.io/kwok: makes fake Nodes Ready and bound Pods Running without a kubelet."""

HELM: Final = "3.22.0"
"""helm.sh/helm/v3."""

JAEGER: Final = "1.76.0"
"""Jaeger all-in-one (v2 architecture) with in-memory storage (stack/go/jaeger)."""

JAEGER_V2: Final = "2.13.0"
"""The v2 number of the same release as JAEGER; the binary reports it, as the release's build does."""

JAEGER_RELEASE_DATE: Final = "2025-12-03T16:07:08Z"
"""Tag time of the pinned Jaeger release, reported by ``jaeger version`` (set with JAEGER)."""

TOXIPROXY: Final = "2.5.0"
"""github.com/Shopify/toxiproxy/v2: network fault injection for the reliability suite."""

KAFKA: Final = "4.1.1"
"""org.apache.kafka:kafka_2.13 from Maven Central (stack/kafka/pom.xml carries the same number)."""

POSTGRES_MAJOR: Final = "15"
"""PostgreSQL server major version, from Debian's postgresql-15 package."""

DEBIAN_PACKAGES: Final = ("postgresql-15", "postgresql-client-15", "prometheus")
"""Debian packages the stack installs with apt-get (prometheus also ships promtool)."""

BUF: Final = "1.75.0"
"""github.com/bufbuild/buf: lint and breaking-change checks of proto/ (a tool, not a server)."""
