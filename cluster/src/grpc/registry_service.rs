//! The registry part of `ClusterService`: `Deploy`, `Undeploy`, `Scale`, `Drain`,
//! `GetServer` and `ListServers`. Each write is checked here and proposed on the leader
//! (see [`LeaderRoute`]); listings join the registry with what each member runs.

use std::future::Future;

use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::cluster::{
    DeployRequest, DrainRequest, GetServerRequest, InstancePlacement, ListServersReply,
    ListServersRequest, ScaleRequest, ServerInfo, UndeployRequest, WriteReply,
};
use mcp_proto::contract::InstanceState;
use mcp_raft::registry::spec::{self, MAX_REPLICAS};
use mcp_raft::registry::{PlacementMode, ServerRecord};
use mcp_raft::{Command, CommandError, RegistryReader};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::leader_route::{Committed, LeaderRoute};
use super::membership_service::MembershipHandlers;
use crate::error::ClusterError;
use crate::fleet::{self, FleetReport};

/// Handlers of the registry RPCs.
#[derive(Clone)]
pub struct RegistryHandlers {
    route: LeaderRoute,
    registry: RegistryReader,
    /// For the fleet report that listings show.
    membership: MembershipHandlers,
}

impl RegistryHandlers {
    /// Registry handlers on `route`, reading `registry`.
    pub fn new(
        route: LeaderRoute,
        registry: RegistryReader,
        membership: MembershipHandlers,
    ) -> Self {
        Self {
            route,
            registry,
            membership,
        }
    }

    /// `Deploy`: adds or replaces a server.
    pub async fn deploy(
        &self,
        request: Request<DeployRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        // Validated where the request arrives, so a bad spec is refused with the field it
        // names even when no leader is reachable. A leader that gets the request forwarded
        // parses it again, on purpose: it builds the command from the JSON it received, and
        // `x-mcpd-forwarded-by` proves nothing (any client with the token can set it), so
        // skipping the check there would let an unchecked spec into the log.
        let spec = spec::parse_json(&request.get_ref().spec_json).map_err(ClusterError::from)?;
        let name = spec.name.clone();
        let command = Command::PutServer {
            spec,
            expected_revision: request.get_ref().expected_revision,
        };
        self.write(request, &name, command, |mut c, r| async move {
            c.deploy(r).await
        })
        .await
    }

    /// `Undeploy`: removes a server.
    pub async fn undeploy(
        &self,
        request: Request<UndeployRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let name = request.get_ref().name.clone();
        check_name(&name)?;
        let command = Command::DeleteServer { name: name.clone() };
        self.write(request, &name, command, |mut c, r| async move {
            c.undeploy(r).await
        })
        .await
    }

    /// `Scale`: sets a server's desired replicas.
    pub async fn scale(
        &self,
        request: Request<ScaleRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let ScaleRequest { name, replicas } = request.get_ref().clone();
        check_name(&name)?;
        if replicas > MAX_REPLICAS {
            return Err(ClusterError::InvalidArgument(format!(
                "replicas must be between 0 and {MAX_REPLICAS}, got {replicas}"
            ))
            .into());
        }
        let command = Command::Scale {
            name: name.clone(),
            replicas,
        };
        self.write(request, &name, command, |mut c, r| async move {
            c.scale(r).await
        })
        .await
    }

    /// `Drain`: sets or clears a node's drain mark.
    pub async fn drain(
        &self,
        request: Request<DrainRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let DrainRequest { id, draining } = *request.get_ref();
        let done = |done| {
            tracing::info!(node = id, draining, "drain mark changed");
            write_reply(&format!("node-{id}"), done)
        };
        self.route
            .propose_or_forward(
                request,
                Command::SetDraining { id, draining },
                done,
                |mut c, r| async move { c.drain(r).await },
            )
            .await
    }

    /// Proposes `command` on the leader (here, or by forwarding `request` with `call`) and
    /// answers with the write's revision for `name`.
    async fn write<T, F, Fut>(
        &self,
        request: Request<T>,
        name: &str,
        command: Command,
        call: F,
    ) -> Result<Response<WriteReply>, Status>
    where
        T: Clone,
        F: Fn(ClusterServiceClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<WriteReply>, Status>>,
    {
        let done = |done| write_reply(name, done);
        self.route
            .propose_or_forward(request, command, done, call)
            .await
    }

    /// `GetServer`: one server's listing.
    pub async fn get_server(
        &self,
        request: Request<GetServerRequest>,
    ) -> Result<Response<ServerInfo>, Status> {
        let GetServerRequest { name, stale } = request.get_ref().clone();
        let read = || async {
            let fleet = self.membership.fleet_report().await;
            self.registry
                .read(|state| {
                    state
                        .registry
                        .server(&name)
                        .map(|record| server_info(record, &fleet))
                })
                .ok_or(ClusterError::Rejected(CommandError::ServerNotFound {
                    name: name.clone(),
                }))
        };
        self.route
            .read_or_forward(request, stale, read, |mut c, r| async move {
                c.get_server(r).await
            })
            .await
    }

    /// `ListServers`: every server's listing, at one registry revision.
    pub async fn list_servers(
        &self,
        request: Request<ListServersRequest>,
    ) -> Result<Response<ListServersReply>, Status> {
        let stale = request.get_ref().stale;
        let read = || async {
            let fleet = self.membership.fleet_report().await;
            Ok(self.registry.read(|state| ListServersReply {
                servers: state
                    .registry
                    .servers()
                    .map(|record| server_info(record, &fleet))
                    .collect(),
                revision: state.registry.revision(),
            }))
        };
        self.route
            .read_or_forward(request, stale, read, |mut c, r| async move {
                c.list_servers(r).await
            })
            .await
    }
}

/// The listing of one server, with where each instance is placed and what its node says
/// it is doing.
fn server_info(record: &ServerRecord, fleet: &FleetReport) -> ServerInfo {
    let spec = &record.spec;
    let mode = spec.placement_mode();
    let (placements, running) = match mode {
        PlacementMode::Everywhere => {
            // Every node keeps its own sessions to the server: count the nodes that have a
            // live one.
            let running = fleet
                .values()
                .flatten()
                .filter(|report| {
                    report
                        .instances
                        .iter()
                        .any(|i| i.server == spec.name && is_running(&i.state))
                })
                .count();
            (Vec::new(), running)
        }
        PlacementMode::Scheduled => {
            let placements: Vec<InstancePlacement> = record
                .placements
                .iter()
                .map(|(instance, node)| InstancePlacement {
                    state: fleet::instance_state(fleet, *node, instance),
                    instance_id: instance.clone(),
                    node_id: *node,
                })
                .collect();
            let running = placements.iter().filter(|p| is_running(&p.state)).count();
            (placements, running)
        }
    };
    ServerInfo {
        name: spec.name.clone(),
        transport: spec.transport_kind().to_owned(),
        replicas: spec.replicas,
        priority: spec.priority,
        tags: spec.tags.clone(),
        create_revision: record.create_revision,
        mod_revision: record.mod_revision,
        spec_json: spec.redacted().to_string(),
        placements,
        running: u32::try_from(running).unwrap_or(u32::MAX),
        scheduled: mode == PlacementMode::Scheduled,
    }
}

pub(super) fn write_reply(name: &str, (outcome, index): Committed) -> WriteReply {
    WriteReply {
        revision: outcome.revision,
        name: name.to_owned(),
        created: outcome.created,
        log_index: index,
    }
}

/// True for an instance state word that means "serving".
fn is_running(state: &str) -> bool {
    InstanceState::parse(state) == Some(InstanceState::Running)
}

fn check_name(name: &str) -> Result<(), ClusterError> {
    spec::validate_name(name).map_err(ClusterError::InvalidSpec)
}
