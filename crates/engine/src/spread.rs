//! One cluster over several engines of a Docker Swarm. Each node's
//! container (and its volume) goes to the engine the cluster placed it on;
//! the cluster's network is the Swarm's attachable overlay, which joins
//! containers of every engine as one bridge joins those of one, so node
//! addresses, pod routes and certificates are as on a single engine. What
//! is no node's (helpers, the load balancer) stays on the first engine.
//! The operations above see one `Engine`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, try_join_all};

use super::{
    Engine, EngineFacts, Error, Filter, Flavour, Kind, NetworkMade, NodeContainer, Privilege,
    Resource, Result,
};

pub struct Spread {
    members: Vec<Arc<dyn Engine>>,
    /// The member that makes the overlay: a manager of the Swarm.
    manager: usize,
    /// Names of containers and volumes, and the ids they were given, by
    /// the member they are on; what is not here is on the first. `None`:
    /// on several (a volume every member has, as the binaries').
    placed: Mutex<HashMap<String, Option<usize>>>,
    /// Networks the Swarm keeps for a node of a member that cannot be
    /// reached: left out of listings, as what can be removed now.
    left: Mutex<Vec<String>>,
}

impl Spread {
    /// `placed`: where each node's container and volume go, by name.
    pub fn new(
        members: Vec<Arc<dyn Engine>>,
        manager: usize,
        placed: HashMap<String, usize>,
    ) -> Self {
        Spread {
            members,
            manager,
            placed: Mutex::new(placed.into_iter().map(|(k, v)| (k, Some(v))).collect()),
            left: Mutex::new(Vec::new()),
        }
    }

    fn index(&self, name: &str) -> usize {
        self.placed
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .flatten()
            .unwrap_or(0)
    }

    pub(crate) fn on(&self, name: &str) -> &dyn Engine {
        &*self.members[self.index(name)]
    }

    fn remember(&self, id: &str, member: usize) {
        self.placed
            .lock()
            .unwrap()
            .insert(id.to_string(), Some(member));
    }

    /// What `list` finds on every member, a Swarm's network once (each
    /// engine with a container on it lists it), each with its member
    /// remembered.
    async fn union<'a, F>(&'a self, list: F) -> Result<Vec<Resource>>
    where
        F: Fn(&'a dyn Engine) -> BoxFuture<'a, Result<Vec<Resource>>>,
    {
        // What an engine that cannot be reached holds is not known; the
        // others' is (`unreachable` names it).
        let list = &list;
        let reached = self.members.iter().map(|m| async move {
            match m.unreachable().is_empty() {
                true => list(&**m).await,
                false => Ok(Vec::new()),
            }
        });
        let found = try_join_all(reached).await?;
        let mut all: Vec<Resource> = Vec::new();
        for (member, resources) in found.into_iter().enumerate() {
            for r in resources {
                let seen = all.iter().any(|a| a.kind == r.kind && a.id == r.id);
                if self.left.lock().unwrap().contains(&r.id) {
                    continue;
                }
                let mut placed = self.placed.lock().unwrap();
                if r.kind == Kind::Network {
                    if seen {
                        continue;
                    }
                    // Removed through a manager.
                    placed.insert(r.id.clone(), Some(self.manager));
                } else {
                    placed.insert(r.id.clone(), (!seen).then_some(member));
                }
                drop(placed);
                all.push(r);
            }
        }
        Ok(all)
    }
}

/// A member of a cluster's engines that could not be reached: every call
/// fails as reaching it did, and listings leave it out, so that the
/// others' nodes are still seen and deleted.
pub struct Lost {
    pub(crate) endpoint: String,
    pub(crate) flavour: Flavour,
    reason: String,
}

impl Lost {
    pub fn new(endpoint: &str, error: &Error) -> Self {
        let (flavour, reason) = match error {
            Error::Unreachable { engine, reason, .. } => (*engine, reason.clone()),
            other => (Flavour::guess(endpoint), other.to_string()),
        };
        Lost {
            endpoint: endpoint.to_string(),
            flavour,
            reason,
        }
    }

    pub(crate) fn error(&self) -> Error {
        Error::Unreachable {
            engine: self.flavour,
            endpoint: self.endpoint.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// Which of the engines whose facts are `members` makes the cluster's
/// network: a manager of the Swarm that every one of them is in. Refused,
/// naming the engine, when one is in no Swarm, is named twice, or is not
/// in the Swarm of the others.
pub fn manager_of(members: &[EngineFacts]) -> Result<usize> {
    let refuse = |why: String| Error::NotOneSwarm {
        why,
        first: members[0].endpoint.clone(),
    };
    let mut nodes = Vec::new();
    for facts in members {
        let Some(swarm) = &facts.swarm else {
            return Err(refuse(format!(
                "the engine at {} is in no Docker Swarm",
                facts.endpoint
            )));
        };
        // One Swarm node is one engine, however it was reached.
        if let Some(earlier) = nodes.iter().position(|n| *n == swarm.node) {
            let earlier = &members[earlier].endpoint;
            return Err(refuse(match *earlier == facts.endpoint {
                true => format!("{earlier} is named twice: they are one engine"),
                false => format!("{earlier} and {} are one engine", facts.endpoint),
            }));
        }
        nodes.push(swarm.node.clone());
    }
    let managers: Vec<(usize, &Vec<String>)> = members
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((i, m.swarm.as_ref()?.manager_of.as_ref()?)))
        .collect();
    let Some((manager, known)) = managers.first() else {
        return Err(refuse(
            "none of them is a manager of its Swarm, which makes its networks".into(),
        ));
    };
    let outside: Vec<&str> = members
        .iter()
        .zip(&nodes)
        .filter(|(_, node)| !known.contains(node))
        .map(|(m, _)| m.endpoint.as_str())
        .collect();
    if !outside.is_empty() {
        return Err(refuse(format!(
            "{} {} not in the Swarm of the engine at {}",
            outside.join(" and "),
            if outside.len() == 1 { "is" } else { "are" },
            members[*manager].endpoint
        )));
    }
    Ok(*manager)
}

/// What `join` found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// They were one Swarm already; nothing changed.
    Already,
    /// The engines that joined the Swarm of the one at `to`.
    Made { to: String, joined: Vec<String> },
}

/// The address other engines reach the engine at `endpoint` at: the host
/// of a `tcp://` or `ssh://` endpoint; `None` for a local socket, for which
/// Docker picks its host's address itself.
fn reached_at(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("ssh://"))?;
    let host = rest.split('/').next()?.rsplit('@').next()?;
    Some(match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
        _ => host.to_string(),
    })
}

/// Makes the engines `members` one Docker Swarm, as a user agreed to with
/// `berth engines join`: a Swarm one of them manages already takes the
/// others in; else the first makes one. With three or more, the first
/// three manage it, so that it keeps a majority of managers when one
/// engine is lost. Refused, changing nothing, when one of them is in
/// another Swarm.
pub async fn join(members: &[super::Docker]) -> Result<Joined> {
    use bollard::models::{SwarmInitRequest, SwarmJoinRequest};
    let facts = try_join_all(members.iter().map(|m| m.facts())).await?;
    if manager_of(&facts).is_ok() {
        return Ok(Joined::Already);
    }
    let refuse = |why: String| Error::NotOneSwarm {
        why,
        first: facts[0].endpoint.clone(),
    };
    for (i, engine) in facts.iter().enumerate() {
        if facts[..i].iter().any(|earlier| earlier.id == engine.id) {
            return Err(refuse(format!(
                "the engine at {} is named twice: they are one engine",
                engine.endpoint
            )));
        }
    }
    // The Swarm they join: one that a member manages, holding every member
    // that is in a Swarm at all.
    let in_one: Vec<usize> = (0..facts.len())
        .filter(|i| facts[*i].swarm.is_some())
        .collect();
    let manager = in_one.iter().copied().find(|i| {
        facts[*i]
            .swarm
            .as_ref()
            .is_some_and(|s| s.manager_of.is_some())
    });
    if let Some(m) = manager {
        let known = facts[m]
            .swarm
            .as_ref()
            .and_then(|s| s.manager_of.clone())
            .unwrap_or_default();
        if let Some(other) = in_one.iter().find(|i| {
            !known.contains(
                &facts[**i]
                    .swarm
                    .as_ref()
                    .map(|s| s.node.clone())
                    .unwrap_or_default(),
            )
        }) {
            let endpoint = &facts[*other].endpoint;
            return Err(refuse(format!(
                "the engine at {endpoint} is in another Swarm than the engine at {}; \
                 `docker -H {endpoint} swarm leave` takes it out",
                facts[m].endpoint
            )));
        }
    } else if let Some(first) = in_one.first() {
        let endpoint = &facts[*first].endpoint;
        return Err(refuse(format!(
            "the engine at {endpoint} is in a Swarm none of the others manages; \
             `docker -H {endpoint} swarm leave` takes it out"
        )));
    }
    let manager = match manager {
        Some(m) => m,
        None => {
            let init = SwarmInitRequest {
                listen_addr: Some("0.0.0.0:2377".into()),
                advertise_addr: reached_at(&facts[0].endpoint),
                ..Default::default()
            };
            members[0]
                .api
                .init_swarm(init)
                .await
                .map_err(|e| members[0].api_error("make a Swarm".into(), e))?;
            0
        }
    };
    let lead = &members[manager];
    let swarm = lead
        .api
        .inspect_swarm()
        .await
        .map_err(|e| lead.api_error("read the Swarm's join tokens".into(), e))?;
    let tokens = swarm.join_tokens.unwrap_or_default();
    let address = lead
        .facts()
        .await?
        .swarm
        .map(|s| s.address)
        .unwrap_or_default();
    let mut joined = Vec::new();
    for (i, (member, facts)) in members.iter().zip(&facts).enumerate() {
        if i == manager || facts.swarm.is_some() {
            continue;
        }
        let manages = members.len() >= 3 && i < 3;
        let token = match manages {
            true => tokens.manager.clone(),
            false => tokens.worker.clone(),
        };
        let request = SwarmJoinRequest {
            listen_addr: Some("0.0.0.0:2377".into()),
            advertise_addr: reached_at(&facts.endpoint),
            remote_addrs: Some(vec![format!("{address}:2377")]),
            join_token: token,
            ..Default::default()
        };
        member
            .api
            .join_swarm(request)
            .await
            .map_err(|e| member.api_error(format!("join the Swarm of {}", facts.endpoint), e))?;
        joined.push(facts.endpoint.clone());
    }
    Ok(Joined::Made {
        to: facts[manager].endpoint.clone(),
        joined,
    })
}

/// What `Engine` asks of it besides the calls on one container or volume,
/// which go to the member that holds it (`engine!` in lib.rs).
impl Spread {
    pub(crate) fn first(&self) -> &dyn Engine {
        &*self.members[0]
    }

    pub(crate) fn members_dyn(&self) -> Vec<&dyn Engine> {
        self.members.iter().map(|m| &**m).collect()
    }

    pub(crate) async fn facts(&self) -> Result<EngineFacts> {
        self.first().facts().await
    }

    /// Images are the first member's, where the user builds them (`image
    /// load` reads them there); what every member needs (the node image)
    /// is asked of each of `members`.
    pub(crate) async fn image_exists(&self, name: &str) -> Result<bool> {
        self.first().image_exists(name).await
    }

    pub(crate) async fn save_images(&self, names: &[String]) -> Result<Vec<u8>> {
        self.first().save_images(names).await
    }

    pub(crate) async fn build_image(
        &self,
        context_tar: Vec<u8>,
        tag: &str,
        build_args: &HashMap<String, String>,
        labels: &HashMap<String, String>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<()> {
        let first = self.first();
        first
            .build_image(context_tar, tag, build_args, labels, progress)
            .await
    }

    pub(crate) async fn create_container(&self, spec: &NodeContainer) -> Result<String> {
        let member = self.index(&spec.name);
        let id = self.members[member].create_container(spec).await?;
        self.remember(&id, member);
        Ok(id)
    }

    /// The first member's answer: the members of one cluster are engines
    /// of one kind, set up alike.
    pub(crate) async fn privilege(&self, probe: &NodeContainer) -> Result<Privilege> {
        self.first().privilege(probe).await
    }

    /// The Swarm's overlay, on a subnet no member uses.
    pub(crate) async fn make_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        subnets: &[String],
        _helper_image: &str,
    ) -> Result<NetworkMade> {
        let used = self.used_subnets().await?;
        let free: Vec<String> = subnets
            .iter()
            .filter(|s| !used.contains(s))
            .cloned()
            .collect();
        let made = self.members[self.manager]
            .make_spanning_network(name, labels, &free)
            .await?;
        if let NetworkMade::Made { id, .. } = &made {
            self.remember(id, self.manager);
            self.remember(name, self.manager);
        }
        Ok(made)
    }

    pub(crate) async fn make_spanning_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        subnets: &[String],
    ) -> Result<NetworkMade> {
        self.make_network(name, labels, subnets, "").await
    }

    pub(crate) async fn used_subnets(&self) -> Result<Vec<String>> {
        let used = try_join_all(self.members.iter().map(|m| m.used_subnets())).await?;
        Ok(used.concat())
    }

    pub(crate) async fn attach(&self, network: &str, container: &str, ip: &str) -> Result<()> {
        self.on(container).attach(network, container, ip).await
    }

    pub(crate) async fn detach(&self, network: &str, container: &str) -> Result<()> {
        self.on(container).detach(network, container).await
    }

    pub(crate) async fn resources(&self, filter: &Filter) -> Result<Vec<Resource>> {
        self.union(move |m| m.resources(filter)).await
    }

    pub(crate) async fn named(&self, kind: Kind, name: &str) -> Result<Vec<Resource>> {
        self.union(move |m| m.named(kind, name)).await
    }

    pub(crate) async fn remove(&self, resource: &Resource) -> Result<()> {
        let member = self
            .placed
            .lock()
            .unwrap()
            .get(&resource.id)
            .copied()
            .flatten();
        match member {
            Some(member) => match self.members[member].remove(resource).await {
                // The Swarm keeps a network while a node of an engine it lost
                // is on it: left, for the delete to name (`unreachable` says
                // which engine holds that node).
                Err(Error::Api { message, .. })
                    if resource.kind == Kind::Network
                        && message.contains("in use by task")
                        && !Engine::unreachable(self).is_empty() =>
                {
                    self.left.lock().unwrap().push(resource.id.clone());
                    Ok(())
                }
                other => other,
            },
            // Not seen by this berth, or on several members: removed wherever
            // it is (a removal of what is not there is no error).
            None => {
                try_join_all(self.members.iter().map(|m| m.remove(resource))).await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn describe(&self) -> Result<serde_json::Value> {
        let each = try_join_all(self.members.iter().map(|m| m.describe())).await?;
        Ok(serde_json::Value::Array(each))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeEngine;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Two fake engines, the second a manager; `dev` on the first,
    /// `dev-m02` and its volume on the second.
    fn two() -> (Arc<FakeEngine>, Arc<FakeEngine>, Spread) {
        let (a, b) = (
            Arc::new(FakeEngine::default()),
            Arc::new(FakeEngine::default()),
        );
        let placed = HashMap::from([("dev-m02".to_string(), 1), ("dev-m02-var".to_string(), 1)]);
        let spread = Spread::new(vec![a.clone(), b.clone()], 1, placed);
        (a, b, spread)
    }

    #[test]
    fn each_node_goes_to_its_engine_and_is_reached_there_by_name_or_id() {
        let (a, b, spread) = two();
        block_on(async {
            spread
                .create_volume("dev-m02-var", &HashMap::new())
                .await
                .unwrap();
            for name in ["dev", "dev-m02"] {
                let spec = NodeContainer::helper(name.to_string(), "node:1", HashMap::new());
                let id = spread.create_container(&spec).await.unwrap();
                spread.start_container(&id).await.unwrap();
            }
            spread.stop_container("dev-m02", 1).await.unwrap();
        });
        assert_eq!(a.names(), ["container dev"]);
        assert_eq!(b.names(), ["container dev-m02", "volume dev-m02-var"]);
        let listed = block_on(spread.resources(&Filter::default())).unwrap();
        assert_eq!(listed.len(), 3, "{listed:?}");
        // What a listing found is removed where it is.
        for r in listed {
            block_on(spread.remove(&r)).unwrap();
        }
        assert!(a.names().is_empty() && b.names().is_empty());
    }

    #[test]
    fn the_network_is_the_swarms_made_by_its_manager_on_a_subnet_no_engine_uses() {
        let (a, b, spread) = two();
        a.subnets.lock().unwrap().push("172.30.0.0/24".into());
        let subnets = ["172.30.0.0/24".to_string(), "172.30.1.0/24".into()];
        let made = block_on(spread.make_network("net", &HashMap::new(), &subnets, "")).unwrap();
        let NetworkMade::Made { subnet, .. } = made else {
            panic!("{made:?}")
        };
        assert_eq!(subnet, "172.30.1.0/24");
        assert!(a.names().is_empty());
        assert_eq!(b.names(), ["network net"]);
    }

    #[test]
    fn an_engine_is_reached_at_its_endpoints_host() {
        assert_eq!(
            reached_at("tcp://10.0.0.5:2376").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            reached_at("ssh://me@box:2222/run/docker.sock").as_deref(),
            Some("box")
        );
        assert_eq!(reached_at("ssh://box").as_deref(), Some("box"));
        assert_eq!(reached_at("unix:///var/run/docker.sock"), None);
    }

    #[test]
    fn images_are_the_first_engines_and_the_network_is_made_once() {
        let (a, _b, spread) = two();
        assert!(block_on(spread.image_exists("node:1")).unwrap());
        a.lacks_images();
        assert!(!block_on(spread.image_exists("node:1")).unwrap());
        assert_eq!(spread.members().len(), 2);
    }

    #[test]
    fn the_engines_must_be_of_one_swarm_whose_manager_makes_the_network() {
        use crate::SwarmMember;
        let member = |endpoint: &str, node: &str, manager_of: Option<Vec<&str>>| EngineFacts {
            id: endpoint.into(),
            endpoint: endpoint.into(),
            swarm: Some(SwarmMember {
                node: node.into(),
                address: String::new(),
                manager_of: manager_of.map(|ids| ids.into_iter().map(String::from).collect()),
            }),
            ..block_on(FakeEngine::default().facts()).unwrap()
        };
        let worker = member("tcp://a", "n1", None);
        let manager = member("tcp://b", "n2", Some(vec!["n1", "n2"]));
        assert_eq!(manager_of(&[worker.clone(), manager.clone()]).unwrap(), 1);
        let alone = EngineFacts {
            swarm: None,
            ..member("tcp://c", "n3", None)
        };
        let refused = |members: &[EngineFacts]| manager_of(members).unwrap_err().to_string();
        assert!(refused(&[manager.clone(), alone]).contains("tcp://c is in no Docker Swarm"));
        let elsewhere = member("tcp://d", "n4", None);
        assert!(
            refused(&[manager.clone(), elsewhere])
                .contains("tcp://d is not in the Swarm of the engine at tcp://b"),
        );
        assert!(
            refused(&[worker.clone(), member("tcp://e", "n5", None)])
                .contains("none of them is a manager")
        );
        let again = EngineFacts {
            endpoint: "tcp://b2".into(),
            ..manager.clone()
        };
        assert!(refused(&[manager.clone(), again]).contains("tcp://b and tcp://b2 are one engine"));
        assert!(refused(&[manager.clone(), manager]).contains("tcp://b is named twice"));
    }

    #[test]
    fn an_engine_that_cannot_be_reached_is_named_and_the_others_are_still_listed() {
        let (a, _b, _) = two();
        let unreachable = Error::Unreachable {
            engine: Flavour::Docker,
            endpoint: "tcp://b:2376".into(),
            reason: "connection refused".into(),
        };
        let lost = Arc::new(Lost::new("tcp://b:2376", &unreachable));
        let placed = HashMap::from([("dev-m02".to_string(), 1)]);
        let spread = Spread::new(vec![a.clone(), lost], 0, placed);
        block_on(async {
            let spec = NodeContainer::helper("dev".into(), "node:1", HashMap::new());
            spread.create_container(&spec).await.unwrap();
        });
        assert_eq!(spread.unreachable(), ["tcp://b:2376"]);
        let listed = block_on(spread.resources(&Filter::default())).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        let error = block_on(spread.stop_container("dev-m02", 1)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("cannot reach the Docker engine at tcp://b:2376"),
            "{error}"
        );
    }
}
