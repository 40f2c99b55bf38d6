//! One read of the API server for `discover` and `init`: the pods a query
//! matches and the nodes, with the client and error reporting the watches
//! use (`discovery::kube`), so both authenticate and fail alike.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::ListParams;

use super::{Inventory, Nodes, Query};
use crate::discovery::Options;
use crate::discovery::index::objects::{NodeInfo, PodInfo};
use crate::discovery::kube::{KubeError, connect, describe_request};
use crate::discovery::plan::Conn;

/// Lists the pods of `query` and every node. Nodes that cannot be listed
/// (the minimal role reads pods only) are reported, not an error.
pub async fn inventory(query: &Query, opts: &Options) -> Result<Inventory, KubeError> {
    let conn = Conn { kubeconfig: query.kubeconfig.clone(), context: query.context.clone() };
    let c = connect(conn, opts.clone()).await?;
    let mut params = ListParams::default();
    if let Some(s) = &query.selector {
        params = params.labels(s);
    }
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &query.namespace);
    let pods = pods.list(&params).await.map_err(|e| describe_request(&e, &c.server, "list", "pods"))?;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let nodes = match nodes.list(&ListParams::default()).await {
        Ok(list) => Nodes::Listed(list.items.iter().map(NodeInfo::from_node).collect()),
        Err(e) => Nodes::Unreadable(describe_request(&e, &c.server, "list", "nodes")),
    };
    Ok(Inventory {
        server: c.server,
        query: query.clone(),
        pods: pods.items.iter().map(PodInfo::from_pod).collect(),
        nodes,
    })
}
