//! Well-known label, annotation and finalizer keys (the only place their strings live).

/// Label every object oxivirt installs by itself carries (CRDs, shipped content).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Value of [`MANAGED_BY_LABEL`] on what oxivirt installs.
pub const MANAGED_BY: &str = "oxivirt";

/// Node annotation holding the PEM certificate of the node agent's HTTPS endpoint. The
/// agent generates it itself; the API server pins exactly this certificate when it relays
/// consoles, logs and VM commands (only components may write Nodes).
pub const AGENT_CERTIFICATE_ANNOTATION: &str = "oxivirt.io/agent-certificate";

/// Common name of the client certificate the API server presents to node agents; agents
/// accept it only when it chains to the cluster CA.
pub const AGENT_CLIENT_COMMON_NAME: &str = "oxivirt-apiserver-node-client";

/// The HTTP `Upgrade` token of a raw byte stream between the API server and a node agent
/// (console, VNC, port-forward); the API server turns it into upstream's websocket.
pub const AGENT_STREAM_UPGRADE: &str = "oxivirt-stream";
