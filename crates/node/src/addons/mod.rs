//! The addons a cluster can have, one file each behind [`Definition`]:
//! what it is, the images it runs for each Kubernetes minor (those its
//! upstream documents as supported for that minor), its manifest (a YAML
//! file beside its code, with `${NAME}` where a cluster's value goes), and
//! what it adds to every node. The control plane applies the manifests of
//! the enabled addons itself, at every boot (the `berth-addons` unit), so
//! that they come back after a stop without berth.

use std::fmt;
use std::str::FromStr;

use crate::minors::Minor;
use crate::render::{K8S_DIR, NodeFile, NodeSpec};

mod coredns;
mod dashboard;
mod ingress;
mod metrics_server;
mod storage;

pub use dashboard::{DASHBOARD_ADMIN, DASHBOARD_NAMESPACE, DASHBOARD_SERVICE, DASHBOARD_VIEWER};
pub use ingress::{INGRESS_CONTROLLER, INGRESS_NAMESPACE};
#[cfg(test)]
pub(crate) use storage::STORAGE_SCRIPT;
pub use storage::{STORAGE_PROVISIONER, STORAGE_ROOT, STORAGE_UNIT, STORAGE_USER};

/// An image an addon runs, as berth builds it from its Go module: the
/// binary alone, as upstream's distroless image holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FromSource {
    /// The image as the manifest names it.
    pub image: String,
    pub module: &'static str,
    pub version: &'static str,
    /// The main package; its last element names the binary.
    pub package: &'static str,
    /// The version stamps of upstream's release build.
    pub ldflags: String,
    /// The user it runs as (`uid:gid`).
    pub user: &'static str,
}

impl FromSource {
    pub fn binary(&self) -> &'static str {
        self.package.rsplit('/').next().unwrap_or(self.package)
    }

    /// The archive's file name in berth's image cache.
    pub fn archive(&self) -> String {
        format!("{}-{}.tar", self.binary(), self.version)
    }
}

/// CRDs an addon's controller implements, as the YAML files of a directory
/// of their Go module (no registry of manifests is reachable where the
/// module proxy is).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crds {
    pub module: &'static str,
    pub version: &'static str,
    /// The directory of the module whose `*.yaml` files are the CRDs.
    pub dir: &'static str,
}

impl Crds {
    /// The file in berth's cache holding them all.
    pub fn file_name(&self) -> String {
        let project = self.module.rsplit('/').next().unwrap_or(self.module);
        let channel = self.dir.rsplit('/').next().unwrap_or(self.dir);
        format!("{project}-{}-{channel}.yaml", self.version)
    }
}

/// What an addon ran before berth replaced a project its upstream retired:
/// a control plane whose manifest still holds `marker` runs the old one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetiredFrom {
    /// The old project's name, as users may still ask for it.
    pub name: &'static str,
    pub marker: &'static str,
    /// The old project, as a user is told it was replaced.
    pub what: &'static str,
}

/// Where a node takes images of addons built from source at boot, to
/// import them once (the node image's berth-pause-import unit).
pub const NODE_IMAGES_DIR: &str = "/var/lib/berth/images";

/// Where the control plane keeps the objects it applies itself at boot.
pub const ADDONS_DIR: &str = "/etc/kubernetes/addons";
/// The CRDs among them, applied before the rest.
const CRDS_DIR: &str = "/etc/kubernetes/addons/crds";

/// What one addon is and brings.
pub trait Definition: Sync {
    fn name(&self) -> &'static str;

    /// What it gives, in a few words.
    fn about(&self) -> &'static str;

    /// Its upstream project, where its releases come from.
    fn project(&self) -> &'static str;

    /// On in a new profile unless turned off.
    fn by_default(&self) -> bool {
        false
    }

    /// The images it runs on a cluster of `row`'s minor.
    fn images(&self, row: &Minor) -> Vec<String>;

    /// The namespace and Deployment names whose availability says it is
    /// ready.
    fn deployments(&self) -> &'static [(&'static str, &'static str)];

    /// Its manifest, rendered for the control plane of `spec`.
    fn manifest(&self, spec: &NodeSpec) -> String;

    /// Its images berth builds from source where no registry serves them,
    /// on `row`'s minor.
    fn built_from_source(&self, _row: &Minor) -> Vec<FromSource> {
        Vec::new()
    }

    /// The CRDs it needs on `row`'s minor, applied before its manifest.
    fn crds(&self, _row: &Minor) -> Option<Crds> {
        None
    }

    /// The retired project it ran under an older berth, if any.
    fn retired(&self) -> Option<RetiredFrom> {
        None
    }

    /// What it adds to every node's files while it is on.
    fn node_files(&self, _spec: &NodeSpec) -> Vec<NodeFile> {
        Vec::new()
    }

    /// The units of its own every node runs while it is on.
    fn units(&self) -> &'static [&'static str] {
        &[]
    }

    /// Turning it on or off changes the files of every node, not only the
    /// control plane's manifest.
    fn every_node(&self) -> bool {
        !self.units().is_empty()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Addon {
    Coredns,
    Storage,
    MetricsServer,
    Dashboard,
    Ingress,
}

impl Addon {
    pub const ALL: [Addon; 5] = [
        Addon::Coredns,
        Addon::Storage,
        Addon::MetricsServer,
        Addon::Dashboard,
        Addon::Ingress,
    ];

    /// The one place that knows which file defines which addon.
    pub fn definition(self) -> &'static dyn Definition {
        match self {
            Addon::Coredns => &coredns::CoreDns,
            Addon::Storage => &storage::Storage,
            Addon::MetricsServer => &metrics_server::MetricsServer,
            Addon::Dashboard => &dashboard::Dashboard,
            Addon::Ingress => &ingress::Ingress,
        }
    }

    pub fn name(self) -> &'static str {
        self.definition().name()
    }

    pub fn about(self) -> &'static str {
        self.definition().about()
    }

    pub fn project(self) -> &'static str {
        self.definition().project()
    }

    pub fn by_default(self) -> bool {
        self.definition().by_default()
    }

    pub fn images(self, row: &Minor) -> Vec<String> {
        self.definition().images(row)
    }

    pub fn deployments(self) -> &'static [(&'static str, &'static str)] {
        self.definition().deployments()
    }

    pub fn built_from_source(self, row: &Minor) -> Vec<FromSource> {
        self.definition().built_from_source(row)
    }

    pub fn crds(self, row: &Minor) -> Option<Crds> {
        self.definition().crds(row)
    }

    pub fn retired(self) -> Option<RetiredFrom> {
        self.definition().retired()
    }

    pub fn units(self) -> &'static [&'static str] {
        self.definition().units()
    }

    pub fn every_node(self) -> bool {
        self.definition().every_node()
    }

    /// Where the control plane keeps its manifest.
    pub fn manifest_path(self) -> String {
        format!("{ADDONS_DIR}/{}.yaml", self.name())
    }

    /// Where the control plane keeps its CRDs: apart from the manifests,
    /// since they are applied first, and server-side (an HTTPRoute CRD
    /// outgrows the annotation a client-side apply keeps).
    pub fn crds_path(self) -> String {
        format!("{CRDS_DIR}/{}.yaml", self.name())
    }

    pub fn manifest(self, spec: &NodeSpec) -> String {
        self.definition().manifest(spec)
    }
}

impl fmt::Display for Addon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Addon {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Addon::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| {
                let all = Addon::ALL.map(Addon::name).join(", ");
                let instead = Addon::ALL
                    .into_iter()
                    .find(|a| a.retired().is_some_and(|r| r.name == name));
                match instead {
                    Some(addon) => format!(
                        "there is no addon `{name}`: its project was retired upstream, and the addon `{addon}` runs {} in its place; the addons are {all}",
                        addon.project()
                    ),
                    None => format!("there is no addon `{name}`; the addons are {all}"),
                }
            })
    }
}

/// `template` with each `${NAME}` of `values` replaced by its value. A
/// unit test renders every addon and finds no `${` left.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |text, (name, value)| {
            text.replace(&format!("${{{name}}}"), value)
        })
}

/// Every node's files of the addons `spec` has on, and on the first
/// control plane their manifests and the unit that applies them.
pub fn files(spec: &NodeSpec) -> Vec<NodeFile> {
    let mut files: Vec<NodeFile> = spec
        .addons
        .iter()
        .flat_map(|addon| addon.definition().node_files(spec))
        .collect();
    if spec.first && (!spec.addons.is_empty() || spec.service_lb) {
        files.extend(
            spec.addons.iter().map(|addon| {
                crate::render::file(&addon.manifest_path(), addon.manifest(spec), 0o644)
            }),
        );
        if spec.service_lb {
            files.push(crate::render::file(
                &crate::service_lb::manifest_path(),
                crate::service_lb::manifest(),
                0o644,
            ));
        }
        files.extend(crate::render::enabled_unit("berth-addons", apply_unit()));
    }
    files
}

/// Applies the addons once the API server answers, at every boot of the
/// control plane, so that they come up also when `start` does not wait:
/// the CRDs first, then the manifests (a directory without either is
/// nothing to apply, not an error to retry).
fn apply_unit() -> String {
    let kubectl = format!(
        "{}/kubectl --kubeconfig {K8S_DIR}/admin.conf apply",
        berth_engine::BINARIES_MOUNT
    );
    let crds = format!(
        "{{ ! ls {CRDS_DIR}/*.yaml >/dev/null 2>&1 || {kubectl} --server-side --force-conflicts -f {CRDS_DIR}; }}"
    );
    let manifests =
        format!("{{ ! ls {ADDONS_DIR}/*.yaml >/dev/null 2>&1 || {kubectl} -f {ADDONS_DIR}; }}");
    format!(
        "# Rendered by berth.
[Unit]
Description=Cluster addons (CoreDNS, the default StorageClass, those enabled)
After=kube-apiserver.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'until {crds} && {manifests}; do sleep 1; done'
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minors::MINORS;

    #[test]
    fn names_read_back_and_an_unknown_one_lists_them_all() {
        for addon in Addon::ALL {
            assert_eq!(addon.name().parse::<Addon>(), Ok(addon));
            let json = serde_json::to_string(&addon).unwrap();
            assert_eq!(json, format!("\"{}\"", addon.name()));
        }
        let error = "traefik".parse::<Addon>().unwrap_err();
        assert!(
            error.contains("coredns, storage, metrics-server, dashboard, ingress"),
            "{error}"
        );
        // A retired project's name points to the addon that replaced it.
        let error = "ingress-nginx".parse::<Addon>().unwrap_err();
        assert!(
            error.contains("the addon `ingress` runs traefik/traefik in its place"),
            "{error}"
        );
        let error = "kubernetes-dashboard".parse::<Addon>().unwrap_err();
        assert!(
            error.contains("`dashboard` runs kubernetes-sigs/headlamp"),
            "{error}"
        );
    }

    /// The objects of a manifest.
    pub(super) fn objects(manifest: &str) -> Vec<serde_json::Value> {
        yaml_serde::Deserializer::from_str(manifest)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect()
    }

    /// `objects` hold a `kind` named `name` in `namespace`.
    pub(super) fn holds(
        objects: &[serde_json::Value],
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        objects.iter().any(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"].as_str() == namespace
        })
    }

    /// The tags of `addon`'s images on `minor`.
    pub(super) fn tags(addon: Addon, minor: u32) -> Vec<String> {
        let row = MINORS.iter().find(|r| r.minor == minor).unwrap();
        addon
            .images(row)
            .iter()
            .map(|i| i.rsplit(':').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn every_minor_has_images_with_a_registry_and_a_release_tag() {
        for row in MINORS {
            for addon in Addon::ALL {
                for image in addon.images(row) {
                    let tag = image.rsplit(':').next().unwrap();
                    assert!(
                        image.contains('/')
                            && tag
                                .trim_start_matches('v')
                                .starts_with(|c: char| c.is_ascii_digit()),
                        "{addon} on 1.{}: {image}",
                        row.minor
                    );
                }
            }
        }
    }

    /// Every manifest, on every minor, is YAML with nothing left to fill,
    /// runs the images `images` names, and holds the Deployments whose
    /// availability says it is ready.
    #[test]
    fn every_manifest_is_filled_yaml_with_its_images_and_deployments() {
        for row in MINORS {
            let spec = crate::render::tests::spec(row.minor);
            for addon in Addon::ALL {
                let manifest = addon.manifest(&spec);
                assert!(!manifest.contains("${"), "{addon}: {manifest}");
                let objects = objects(&manifest);
                let mut images: Vec<&str> = objects
                    .iter()
                    .filter_map(|o| o["spec"]["template"]["spec"]["containers"].as_array())
                    .flatten()
                    .filter_map(|c| c["image"].as_str())
                    .collect();
                images.sort();
                let mut wanted = addon.images(row);
                wanted.sort();
                assert_eq!(images, wanted, "{addon} on 1.{}", row.minor);
                for (namespace, name) in addon.deployments() {
                    assert!(
                        holds(&objects, "Deployment", Some(namespace), name),
                        "{addon}: no Deployment {namespace}/{name}"
                    );
                }
            }
        }
    }
}
