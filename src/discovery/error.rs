//! Why a Kubernetes source cannot be read: plain data, shared by the
//! watches and by `discover`.

/// Why a source cannot be read. Messages name the server and say what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    #[error("cannot use kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("cannot load {conn} from the kubeconfig (KUBECONFIG or ~/.kube/config): {reason}")]
    Context { conn: String, reason: String },
    #[error("cannot make a client for {server}: {reason}")]
    Client { server: String, reason: String },
    #[error("is the VPN up? the API server {server} did not answer: {reason}")]
    Unreachable { server: String, reason: String },
    #[error(
        "the API server {server} refused to let us {verb} {resource} ({code}): {message}; \
         see examples/rbac.yaml for the minimal role"
    )]
    Forbidden { server: String, verb: &'static str, resource: &'static str, code: u16, message: String },
    #[error(
        "{server} answered with something that is not a Kubernetes object ({reason}); is it the API server of this context?"
    )]
    Garbled { server: String, reason: String },
    #[error("the API server {server} failed the request ({code}): {message}")]
    Api { server: String, code: u16, message: String },
    #[error("the API server {server} said the watch's resourceVersion is too old (410 Gone); relisting")]
    Gone { server: String },
}

impl KubeError {
    /// A routine relist, not trouble.
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Gone { .. })
    }
}
