//! The MCP gateway's part of `ClusterService` (issue 13): views (`PutView`, `ListViews`,
//! `DeleteView`) and `AnnounceListsChanged`, which a node sends when a server announced a
//! change of its lists. Writes are checked here, then proposed on the leader (see
//! [`LeaderRoute`]); reads come from this node's registry.

use futures::future::BoxFuture;
use mcp_proto::cluster::{
    AnnounceListsChangedRequest, DeleteViewRequest, ListViewsReply, ListViewsRequest,
    PutViewRequest, WriteReply,
};
use mcp_proto::contract::ErrorKind;
use mcp_raft::registry::spec;
use mcp_raft::registry::views::{validate_view_name, ViewSpec};
use mcp_raft::{Command, RegistryReader};
use tonic::{Request, Response, Status};

use super::leader_route::LeaderRoute;
use super::registry_service::write_reply;
use crate::error::ClusterError;

/// Handlers of the view RPCs.
#[derive(Clone)]
pub struct ViewHandlers {
    route: LeaderRoute,
    registry: RegistryReader,
}

fn not_found(name: &str) -> Status {
    ErrorKind::NotFound.status(format!("view {name:?} not found"))
}

impl ViewHandlers {
    /// Handlers proposing through `route`, reading `registry`.
    pub fn new(route: LeaderRoute, registry: RegistryReader) -> Self {
        Self { route, registry }
    }

    /// `PutView`: creates or replaces a view.
    pub async fn put_view(
        &self,
        request: Request<PutViewRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let view = ViewSpec::from_json(&request.get_ref().view_json)
            .map_err(|e| ClusterError::InvalidArgument(e.to_string()))?;
        let name = view.name.clone();
        self.route
            .propose_or_forward(
                request,
                Command::PutView { view },
                |done| write_reply(&name, done),
                |mut c, r| async move { c.put_view(r).await },
            )
            .await
    }

    /// `ListViews`: every view, or the one named.
    pub async fn list_views(
        &self,
        request: Request<ListViewsRequest>,
    ) -> Result<Response<ListViewsReply>, Status> {
        let name = request.into_inner().name;
        let (views, revision) = self.registry.read(|state| {
            let views: Vec<String> = state
                .registry
                .views()
                .iter()
                .filter(|v| name.is_empty() || v.name == name)
                .filter_map(|v| serde_json::to_string(v).ok())
                .collect();
            (views, state.registry.revision())
        });
        if !name.is_empty() && views.is_empty() {
            return Err(not_found(&name));
        }
        Ok(Response::new(ListViewsReply {
            views_json: views,
            revision,
        }))
    }

    /// `DeleteView`: removes a view (NOT_FOUND if this node knows no such view).
    pub async fn delete_view(
        &self,
        request: Request<DeleteViewRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let name = request.get_ref().name.clone();
        validate_view_name(&name).map_err(|e| ClusterError::InvalidArgument(e.to_string()))?;
        let known = self
            .registry
            .read(|state| state.registry.views().get(&name).is_some());
        if !known {
            return Err(not_found(&name));
        }
        self.route
            .propose_or_forward(
                request,
                Command::DeleteView { name: name.clone() },
                |done| write_reply(&name, done),
                |mut c, r| async move { c.delete_view(r).await },
            )
            .await
    }

    /// `AnnounceListsChanged`: counts a list change a server announced.
    pub async fn announce_lists_changed(
        &self,
        request: Request<AnnounceListsChangedRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let name = request.get_ref().server.clone();
        spec::validate_name(&name).map_err(ClusterError::InvalidSpec)?;
        self.route
            .propose_or_forward(
                request,
                Command::ServerListsChanged { name: name.clone() },
                |done| write_reply(&name, done),
                |mut c, r| async move { c.announce_lists_changed(r).await },
            )
            .await
    }
}

impl crate::dataplane::list_changes::ListChangeWriter for ViewHandlers {
    fn announce(&self, server: String) -> BoxFuture<'static, Result<(), String>> {
        let handlers = self.clone();
        Box::pin(async move {
            let mut request = Request::new(AnnounceListsChangedRequest { server });
            // The node's own credential, as for a peer: the leader checks it.
            handlers.route.peers().authorize(request.metadata_mut());
            handlers
                .announce_lists_changed(request)
                .await
                .map(|_| ())
                .map_err(|status| status.message().to_owned())
        })
    }
}
