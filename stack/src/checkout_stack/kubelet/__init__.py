"""A kubelet stand-in for the local control plane: the Pods bound to the kwok nodes, run as local processes.

No container runtime exists here, so kwok makes Pods *look* Running; this agent makes them *be*
running. For each Pod of the namespaces it watches whose image is one of ours, it runs exactly what
the Pod says — the init containers in order, then each container's ``command``/``args`` with the
``env``/``envFrom`` of the Pod spec, Secret and ConfigMap references resolved through the API
server, a ServiceAccount token when the Pod mounts one — and what the image would have provided is
taken from the image's own Dockerfile (:mod:`.images`). Each Service gets a local TCP proxy to the
ready Pods behind it (:mod:`.proxy`), which is how one service reaches another and how a user
reaches the gateway.

The few places where a process on one host cannot be a Pod are rewritten, and only these
(:mod:`.containers`): every Pod shares the host's network, so a container port becomes a free local
port (an env var ending in ``PORT`` that names it follows) and ``0.0.0.0`` binds become
``127.0.0.1``; a Service's cluster DNS name in an env value becomes its local proxy's address.
"""
