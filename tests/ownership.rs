//! One engine, several berth homes (CI jobs with their own BERTH_HOME,
//! people sharing a Docker host): each home's berth changes only what is
//! its own, and refuses, before it makes anything, a name someone else has.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use berth_core::names::{LABEL_HOME, Names};
use berth_engine::{Docker, Filter};
use common::{Env, Guard, Resource, block_on};

/// Everything of a home, to tell that nothing of it changed: its resources
/// in the engine with their ids and states, its state files and its
/// kubeconfig.
#[derive(Debug, PartialEq)]
struct Snapshot {
    resources: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
    kubeconfig: Option<String>,
}

fn snapshot(env: &Env) -> Snapshot {
    let home = env.berth_home();
    let filter: Filter = vec![(LABEL_HOME.into(), Some(home.display().to_string()))];
    let mut resources: Vec<String> = block_on(async {
        let docker = Docker::connect().await.unwrap();
        docker.resources(&filter).await.unwrap()
    })
    .into_iter()
    .map(|r| format!("{r} {} {:?}", r.id, r.state))
    .collect();
    resources.sort();
    let mut files = BTreeMap::new();
    collect(&home.join("profiles"), &mut files);
    Snapshot {
        resources,
        files,
        kubeconfig: std::fs::read_to_string(&env.kubeconfig).ok(),
    }
}

fn collect(dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
        }
    }
}

/// Runs `args` in each env at the same moment; each must succeed.
fn at_once(runs: &[(&Env, &[&str])]) {
    let mut running: Vec<_> = runs
        .iter()
        .map(|(env, args)| (args.to_vec(), env.spawn(args)))
        .collect();
    for (args, process) in &mut running {
        assert_eq!(process.0.wait().unwrap().code(), Some(0), "berth {args:?}");
    }
}

fn nodes_ready(env: &Env, profile: &str) {
    let nodes = env.kubectl(profile, &["get", "nodes", "--no-headers"]);
    assert!(nodes.contains(" Ready"), "{profile}: {nodes}");
}

#[test]
fn two_homes_run_the_same_profile_name_side_by_side_and_neither_touches_the_other() {
    let first = Env::new();
    let second = Env::new();
    let (same, one, other) = ("e2e-same", "e2e-one", "e2e-other");
    at_once(&[
        (&first, &["start", "-p", same]),
        (&second, &["start", "-p", same]),
    ]);
    at_once(&[
        (&first, &["start", "-p", one, "--keep-context"]),
        (&second, &["start", "-p", other, "--keep-context"]),
    ]);
    let (a, b) = (first.names(same), second.names(same));
    assert_ne!(a.container(same), b.container(same));
    assert_ne!(a.network(), b.network());
    for env in [&first, &second] {
        nodes_ready(env, same);
    }
    nodes_ready(&first, one);
    nodes_ready(&second, other);

    let before = snapshot(&first);
    for args in [
        &["stop", "-p", same][..],
        &["start", "-p", same],
        &["pause", "--all"],
        &["unpause", "--all"],
        &["node", "add", "-p", same],
        &["image", "ls", "-p", same],
        &["status", "-p", same],
        &["profile", "list"],
        &["delete", "-p", same],
        &["delete", "--all"],
    ] {
        second.ok(args);
    }
    assert_eq!(snapshot(&first), before, "the first home changed");
    assert_eq!(second.leftovers(same), Vec::<String>::new());
    assert_eq!(second.leftovers(other), Vec::<String>::new());
    nodes_ready(&first, same);
    nodes_ready(&first, one);
}

#[test]
fn a_name_another_home_or_something_else_has_is_refused_before_anything_is_made() {
    // Two people on one engine, each with the default home: the names of
    // their profiles are the plain ones, and may clash.
    let alice = Env::with_default_home();
    let bob = Env::with_default_home();
    let profile = "e2e-clash";
    alice.ok(&["start", "-p", profile, "--wait", "0"]);
    // A helper of alice's home at work (young): no one else's to remove.
    let helper = format!("berth-privilege-probe-test-{}", std::process::id());
    let _helper = Guard(Resource::Container(helper.clone()));
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let labels = berth_core::names::helper_labels(&alice.berth_home(), "privilege-probe", "t");
        let image = berth_core::node_image::Context::embedded().image();
        let spec = berth_engine::NodeContainer::helper(helper.clone(), &image, labels);
        docker.create_container(&spec).await.unwrap();
    });
    let before = snapshot(&alice);

    let (code, _, stderr) = bob.run(&["start", "-p", profile]);
    assert_eq!(code, 2, "{stderr}");
    let owner = format!(
        "belongs to profile {profile} of the berth home {}",
        alice.berth_home().display()
    );
    assert!(stderr.contains(&owner), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "BERTH_HOME={} berth delete -p {profile}",
            alice.berth_home().display()
        )),
        "{stderr}"
    );
    assert_eq!(bob.leftovers(profile), Vec::<String>::new());
    assert!(!bob.berth_home().join("profiles").join(profile).exists());
    assert!(!bob.kubeconfig.exists(), "bob's kubeconfig was written");
    // Nor does his delete touch alice's cluster, or her helper.
    let (code, _, stderr) = bob.run(&["delete", "-p", profile]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("it did not exist"), "{stderr}");
    bob.ok(&["delete", "--all"]);
    assert_eq!(snapshot(&alice), before, "alice's home changed");

    // A name held by something berth did not make.
    let plain = "e2e-plain";
    let volume = bob.names(plain).var_volume(plain);
    let _volume = Guard(Resource::Volume(volume.clone()));
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        docker
            .create_volume(&volume, &Default::default())
            .await
            .unwrap();
    });
    let (code, _, stderr) = bob.run(&["start", "-p", plain]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the volume {volume} exists already and belongs to something not made by berth"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("docker volume rm"), "{stderr}");
    // Nothing of berth's: only the volume that is not berth's, untouched.
    assert_eq!(bob.leftovers(plain), [format!("volume {volume}")]);

    // What a cut-off start of bob's own left: named, with the way out.
    let left = "e2e-left";
    let names: Names = bob.names(left);
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        docker
            .create_volume(&names.var_volume(left), &names.labels())
            .await
            .unwrap();
    });
    let (code, _, stderr) = bob.run(&["start", "-p", left]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("`berth delete -p {left}` removes it")),
        "{stderr}"
    );
    bob.ok(&["delete", "-p", left]);
    assert_eq!(bob.leftovers(left), Vec::<String>::new());
    assert_eq!(snapshot(&alice), before, "alice's home changed");
}

#[test]
fn delete_removes_a_duplicate_network_of_its_own_profile() {
    let env = Env::new();
    let profile = "e2e-dup";
    env.ok(&["start", "-p", profile, "--wait", "0"]);
    let names = env.names(profile);
    // What an older berth or a race of the engine could leave: a second
    // network of the same name (engines before API 1.44 allow it).
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let used = docker.used_subnets().await.unwrap();
        let subnet = (0..=255)
            .map(|i| format!("10.231.{i}.0/24"))
            .find(|s| !used.contains(s))
            .unwrap();
        let created = docker
            .create_network(&names.network(), &subnet, &names.labels(), false)
            .await;
        assert!(
            matches!(created, Ok(Some(_))),
            "the engine refused a second network of the name (API 1.44 and later do; \
             the case then cannot arise): {created:?}"
        );
        let both = docker
            .named(berth_engine::Kind::Network, &names.network())
            .await
            .unwrap();
        assert_eq!(both.len(), 2, "this engine refuses duplicate names");
        // A third asked for under the name is made, seen beside the
        // others, and taken back.
        let free: Vec<String> = (0..=255)
            .map(|i| format!("10.232.{i}.0/24"))
            .filter(|s| !used.contains(s))
            .take(1)
            .collect();
        let made = docker
            .make_network(&names.network(), &names.labels(), &free, "unused")
            .await
            .unwrap();
        assert!(
            matches!(made, berth_engine::NetworkMade::NameTaken(_)),
            "{made:?}"
        );
        let ids = |networks: &[berth_engine::Resource]| {
            let mut ids: Vec<String> = networks.iter().map(|n| n.id.clone()).collect();
            ids.sort();
            ids
        };
        let after = docker
            .named(berth_engine::Kind::Network, &names.network())
            .await
            .unwrap();
        assert_eq!(
            ids(&after),
            ids(&both),
            "the network made under a taken name is left"
        );
    });
    let (code, _, stderr) = env.run(&["delete", "-p", profile]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(env.leftovers(profile), Vec::<String>::new());
}

#[test]
fn delete_names_a_container_of_someone_else_on_the_profiles_network_and_leaves_it() {
    let env = Env::new();
    let profile = "e2e-peer";
    env.ok(&["start", "-p", profile, "--wait", "0"]);
    let names = env.names(profile);
    // A container of the user's own on the profile's network, as one
    // attaches a database to a cluster's network.
    let peer = format!("berth-test-peer-{}", std::process::id());
    let _peer = Guard(Resource::Container(peer.clone()));
    // An address on the profile's subnet that no node takes.
    let nodes = common::json(&env.ok(&["node", "list", "-p", profile, "-o", "json"]));
    let (subnet, _) = nodes[0]["ip"].as_str().unwrap().rsplit_once('.').unwrap();
    let ip = format!("{subnet}.250");
    block_on(async {
        let docker = Docker::connect().await.unwrap();
        let image = berth_core::node_image::Context::embedded().image();
        let spec = berth_engine::NodeContainer {
            privilege: Some(berth_engine::Privilege::Capabilities),
            entrypoint: Some(vec!["sleep".into(), "600".into()]),
            network: Some((names.network(), ip)),
            ..berth_engine::NodeContainer::helper(peer.clone(), &image, Default::default())
        };
        let id = docker.create_container(&spec).await.unwrap();
        docker.start_container(&id).await.unwrap();
    });
    let (code, _, stderr) = env.run(&["delete", "-p", profile]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the network {} cannot be removed: containers berth did not make are attached to it ({peer})",
            names.network()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "docker network disconnect {} {peer}",
            names.network()
        )),
        "{stderr}"
    );
    // Its state stays for the next delete; the other container runs on.
    assert!(env.berth_home().join("profiles").join(profile).exists());
    assert_eq!(
        common::resources(&names.filter()),
        [format!("network {}", names.network())]
    );
    let running = block_on(async {
        let docker = Docker::connect().await.unwrap();
        docker
            .named(berth_engine::Kind::Container, &peer)
            .await
            .unwrap()
    });
    assert!(
        running[0].state.is_some_and(|s| s.is_running()),
        "{running:?}"
    );
    drop(_peer);
    env.ok(&["delete", "-p", profile]);
    assert_eq!(env.leftovers(profile), Vec::<String>::new());
}
