//! The scale-to-zero part of `ClusterService`: `SetServerAwake`, proposed on the leader
//! (see [`LeaderRoute`]). Nodes send it on their own credential when a call finds an
//! on-demand server asleep or its instance idle (see `dataplane::on_demand`).

use futures::future::BoxFuture;
use mcp_proto::cluster::{SetServerAwakeRequest, WriteReply};
use mcp_raft::registry::spec;
use mcp_raft::Command;
use tonic::{Request, Response, Status};

use super::leader_route::LeaderRoute;
use super::registry_service::write_reply;
use crate::dataplane::on_demand::DemandWriter;
use crate::error::ClusterError;

/// Handlers of the scale-to-zero RPC.
#[derive(Clone)]
pub struct DemandHandlers {
    route: LeaderRoute,
}

impl DemandHandlers {
    /// Handlers proposing through `route`.
    pub fn new(route: LeaderRoute) -> Self {
        Self { route }
    }

    /// `SetServerAwake`: records whether an on-demand server is awake.
    pub async fn set_server_awake(
        &self,
        request: Request<SetServerAwakeRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let SetServerAwakeRequest { name, awake } = request.get_ref().clone();
        spec::validate_name(&name).map_err(ClusterError::InvalidSpec)?;
        let command = Command::SetAwake {
            name: name.clone(),
            awake,
        };
        self.route
            .propose_or_forward(
                request,
                command,
                |done| write_reply(&name, done),
                |mut c, r| async move { c.set_server_awake(r).await },
            )
            .await
    }
}

impl DemandWriter for DemandHandlers {
    fn set_awake(&self, server: String, awake: bool) -> BoxFuture<'static, Result<(), String>> {
        let handlers = self.clone();
        Box::pin(async move {
            let mut request = Request::new(SetServerAwakeRequest {
                name: server,
                awake,
            });
            // The node's own credential, as for a peer: the leader checks it.
            handlers.route.peers().authorize(request.metadata_mut());
            handlers
                .set_server_awake(request)
                .await
                .map(|_| ())
                .map_err(|status| status.message().to_owned())
        })
    }
}
