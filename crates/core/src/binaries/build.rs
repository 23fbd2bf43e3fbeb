//! Kubernetes and the runtime its minor pins, built from source by the
//! user's own Go from the module proxy Go is configured for (GOPROXY,
//! GOFLAGS, GONOSUMDB, GOTOOLCHAIN as Go reads them), so a site with a
//! module mirror and no release server gets what a download gives.
//!
//! Each project is built as a dependency of a throwaway module of its own,
//! the way its release build does it (tags, cgo, version stamps), into a
//! staging directory that becomes the cache entry only when every binary is
//! there and reports its version: a failed or interrupted build caches
//! nothing. Go's own caches make a second build of the same sources quick.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{Cache, Error, Manifest, Runtime, Source, Version, check, runtime};
use berth_node::addons::{Crds, FromSource};

/// CoreDNS's image as kubeadm deploys it, and what berth builds in its
/// place: the binary, allowed to bind port 53 as a user without privileges.
const COREDNS_MODULE: &str = "github.com/coredns/coredns";
/// The user `nonroot` of upstream's distroless base image.
const COREDNS_USER: &str = "65532:65532";
const CAP_NET_BIND_SERVICE: u32 = 10;
/// Where the CoreDNS binary is built, to become an image: not a cache file.
const COREDNS_OUT: &str = ".src/coredns-bin";

/// One `go build` of one module: what it makes and how upstream builds it.
#[derive(Debug, Clone, PartialEq)]
struct Recipe {
    /// A short name: the build's directory and what progress shows.
    name: &'static str,
    module: String,
    version: String,
    /// Modules replaced by other versions: Kubernetes' staging modules,
    /// which its own go.mod points into its repository.
    replaces: Vec<(String, String)>,
    packages: Vec<String>,
    /// Where the binaries go, below the staging directory.
    out: &'static str,
    /// The binary's name, for a package whose path does not end in it
    /// (`go.etcd.io/etcd/server/v3` is etcd).
    binary: Option<&'static str>,
    /// The `go` line of the module's go.mod, which the build's module
    /// repeats: without one, Go reads the module graph unpruned, as of Go
    /// 1.16, and wants go.mod files of modules the build never uses.
    go: Option<GoVersion>,
    cgo: bool,
    tags: &'static str,
    ldflags: String,
}

/// What a release's go.mod asks of the go command.
#[derive(Debug, Default, PartialEq)]
struct GoMod {
    go: Option<GoVersion>,
    /// Kubernetes' staging modules (`k8s.io/api => ./staging/...`).
    staging: Vec<String>,
}

fn parse_go_mod(text: &str) -> GoMod {
    let mut parsed = GoMod::default();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("go ") {
            parsed.go = GoVersion::parse(v.trim());
        }
        let line = line.strip_prefix("replace ").unwrap_or(line);
        if let Some((from, to)) = line.split_once("=>")
            && to.trim().starts_with("./staging/")
        {
            parsed.staging.push(from.trim().to_string());
        }
    }
    parsed
}

/// A Go release as `go env GOVERSION` and go.mod's `go` line write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoVersion(u32, u32, u32);

impl GoVersion {
    /// `go1.26.8`, `1.26.0`, `1.26`, `go1.27rc1` (a release candidate
    /// counts as the release's .0).
    fn parse(text: &str) -> Option<Self> {
        let digits = text.trim().trim_start_matches("go");
        let mut parts = digits.split('.').map(|p| {
            let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            p[..end].parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(GoVersion(major, minor, patch))
    }
}

impl std::fmt::Display for GoVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The go command as the user has it.
struct Go {
    version: GoVersion,
    /// `GOTOOLCHAIN=local`: it will not fetch a newer toolchain itself.
    local_only: bool,
}

impl Go {
    async fn find() -> Result<Go, Error> {
        let output = tokio::process::Command::new("go")
            .args(["env", "GOVERSION", "GOTOOLCHAIN"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| Error::NoGo(e.to_string()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines = text.lines();
        let version = lines
            .next()
            .and_then(GoVersion::parse)
            .filter(|_| output.status.success())
            .ok_or_else(|| {
                Error::NoGo(format!(
                    "`go env GOVERSION` answered `{}`",
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            })?;
        let toolchain = lines.next().unwrap_or_default();
        Ok(Go {
            version,
            local_only: toolchain == "local" || toolchain.ends_with("+path"),
        })
    }

    /// Refuses modules (each with its go.mod's `go` line) that need a
    /// newer Go than this one, where it will not fetch that Go itself.
    fn can_build<'a>(
        &self,
        modules: impl IntoIterator<Item = (Option<GoVersion>, &'a str)>,
    ) -> Result<(), Error> {
        let needs = modules
            .into_iter()
            .filter_map(|(go, module)| Some((go?, module.to_string())))
            .max_by_key(|(v, _)| *v);
        match needs {
            Some((needed, module)) if self.version < needed && self.local_only => {
                Err(Error::GoTooOld {
                    have: self.version.to_string(),
                    needs: needed.to_string(),
                    module,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The directories a build works in below its staging directory: the
/// modules' sources, and Go's temporary files.
const GO_DIRS: [&str; 2] = [".src", ".tmp"];

/// What a build adds to the user's environment for Go.
type GoEnv = [(&'static str, String); 1];

/// Makes `GO_DIRS` below `staging`; returns the sources' directory and the
/// environment that sends Go's temporary files to the other.
fn go_dirs(staging: &Path) -> Result<(PathBuf, GoEnv), Error> {
    for dir in GO_DIRS.map(|d| staging.join(d)) {
        std::fs::create_dir_all(&dir).map_err(super::write(&dir))?;
    }
    let tmp = staging.join(GO_DIRS[1]);
    Ok((
        staging.join(GO_DIRS[0]),
        [("GOTMPDIR", tmp.display().to_string())],
    ))
}

/// A module's download as `go mod download -json` reports it.
#[derive(serde::Deserialize)]
struct Downloaded {
    #[serde(rename = "GoMod", default)]
    go_mod: Option<PathBuf>,
    #[serde(rename = "Time", default)]
    time: Option<String>,
    #[serde(rename = "Error", default)]
    error: Option<String>,
    /// Where Go extracted it.
    #[serde(rename = "Dir", default)]
    dir: Option<PathBuf>,
}

impl Downloaded {
    /// Where Go extracted `module` `version`.
    fn dir(&self, module: &str, version: &str) -> Result<PathBuf, Error> {
        self.dir.clone().ok_or_else(|| Error::Build {
            what: format!("{module}@{version}"),
            output: "`go mod download` named no directory".into(),
        })
    }
}

/// Kills a go command's whole process group when dropped: the compilers
/// and linkers it started go with it when the build is interrupted.
struct Running(Option<u32>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: signals the process group this build made; a group
            // that ended already makes kill fail harmlessly.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    }
}

/// Runs `go args` in `dir` with `env` added to the user's; returns its
/// standard output, or its last lines of errors as `what` failed.
async fn go(
    dir: &Path,
    args: &[&str],
    env: &[(&str, String)],
    what: &str,
) -> Result<Vec<u8>, Error> {
    let output = run_go(dir, args, env).await?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("go: downloading "))
        .collect();
    Err(Error::Build {
        what: what.to_string(),
        output: said[said.len().saturating_sub(20)..].join("\n"),
    })
}

/// Runs `go args` in `dir` with `env` added to the user's, in a process
/// group of its own that goes when the future is dropped.
async fn run_go(
    dir: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> Result<std::process::Output, Error> {
    let mut command = tokio::process::Command::new("go");
    command
        .args(args)
        .current_dir(dir)
        // A go.work of the user's must not pull its modules in.
        .env("GOWORK", "off")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| Error::NoGo(e.to_string()))?;
    let running = Running(child.id());
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| Error::NoGo(e.to_string()))?;
    std::mem::forget(running);
    Ok(output)
}

impl Cache {
    /// Builds Kubernetes `version` and `runtime` from source and caches
    /// them, with CoreDNS of the minor as an image archive; the cache is
    /// untouched unless everything was built and reports its version.
    /// Dropping the future stops the build and leaves nothing behind.
    pub async fn build(
        &self,
        version: &Version,
        runtime: &Runtime,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Manifest, Error> {
        let row = berth_node::supported(version)?;
        let go = Go::find().await?;
        let staging = self.staging(version, "build")?;
        let (src, env) = go_dirs(&staging.path)?;

        progress(&format!("finding Kubernetes {version} and what it pins"));
        let kubernetes = download(&src, "k8s.io/kubernetes", &version.to_string(), &env).await?;
        let go_mod = read_go_mod(&kubernetes)?;
        let coredns = row.coredns_version();
        let mut recipes = recipes(
            version,
            runtime,
            &go_mod.staging,
            kubernetes.time.as_deref(),
        );
        recipes.push(coredns_recipe(&coredns));
        recipes[0].go = go_mod.go;
        for recipe in recipes.iter_mut().skip(1) {
            let found = download(&src, &recipe.module, &recipe.version, &env).await?;
            recipe.go = read_go_mod(&found)?.go;
        }
        go.can_build(recipes.iter().map(|r| (r.go, r.module.as_str())))?;

        // Kubernetes alone is most of the work, and each go build ends in
        // links that use one core: the rest is built beside it, one after
        // the other, so that both cores stay busy.
        let (kubernetes, rest) = recipes.split_at(1);
        futures_util::future::try_join(
            build_lane(kubernetes, &src, &staging.path, &env, progress),
            build_lane(rest, &src, &staging.path, &env, progress),
        )
        .await?;
        let archive = staging.path.join(runtime::COREDNS_ARCHIVE);
        write_image(
            &staging.path.join(COREDNS_OUT).join("coredns"),
            row.coredns,
            // Upstream's image: as user nonroot, allowed to bind port 53
            // (its Dockerfile's `setcap cap_net_bind_service=+ep`).
            &Binary {
                user: COREDNS_USER,
                capabilities: &[CAP_NET_BIND_SERVICE],
                exposed_ports: &["53/tcp", "53/udp"],
            },
            &archive,
        )?;
        let images = vec![row.coredns.to_string()];
        progress(&format!(
            "CoreDNS {coredns} made into the image {}",
            row.coredns
        ));
        for dir in GO_DIRS.map(|d| staging.path.join(d)) {
            std::fs::remove_dir_all(&dir).map_err(super::write(&dir))?;
        }

        let mut files = check(version, &staging.path)?;
        files.extend(runtime::check(runtime, &staging.path)?);
        files.extend(runtime::check_cni(runtime, &staging.path)?);
        files.insert(
            runtime::COREDNS_ARCHIVE.to_string(),
            super::checked_file(&staging.path, runtime::COREDNS_ARCHIVE, row.coredns)?,
        );
        for (name, entry) in files.iter_mut() {
            let path = staging.path.join(name);
            entry.sha256 = super::sha256_of(&path).map_err(super::write(&path))?;
        }
        let source = Source::Built {
            go: format!("go{}", go.version),
        };
        self.commit(
            version,
            &staging.path,
            files,
            Some(runtime.clone()),
            source,
            images,
        )
    }
}

async fn download(
    src: &Path,
    module: &str,
    version: &str,
    env: &[(&str, String)],
) -> Result<Downloaded, Error> {
    let at = format!("{module}@{version}");
    // A module it cannot get is in its JSON too, with the proxy's answer;
    // it fails then.
    let output = run_go(src, &["mod", "download", "-json", &at], env).await?;
    let found: Downloaded = serde_json::from_slice(&output.stdout).map_err(|_| Error::Build {
        what: at.clone(),
        output: String::from_utf8_lossy(&output.stderr).into_owned(),
    })?;
    match found.error {
        Some(answer) => Err(Error::NotServed {
            module: module.to_string(),
            version: version.to_string(),
            answer,
        }),
        None => Ok(found),
    }
}

fn read_go_mod(found: &Downloaded) -> Result<GoMod, Error> {
    let Some(path) = &found.go_mod else {
        return Ok(GoMod::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    Ok(parse_go_mod(&text))
}

/// The module of `recipe`, as the only requirement of a module of its own.
fn go_mod_of(recipe: &Recipe) -> String {
    let mut text = format!("module berth.local/build/{}\n\n", recipe.name);
    if let Some(go) = recipe.go {
        text.push_str(&format!("go {go}\n\n"));
    }
    text.push_str(&format!("require {} {}\n", recipe.module, recipe.version));
    if !recipe.replaces.is_empty() {
        text.push_str("\nreplace (\n");
        for (module, version) in &recipe.replaces {
            text.push_str(&format!("\t{module} => {module} {version}\n"));
        }
        text.push_str(")\n");
    }
    text
}

/// Builds `recipes` one after the other.
async fn build_lane(
    recipes: &[Recipe],
    src: &Path,
    staging: &Path,
    env: &[(&str, String)],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), Error> {
    for recipe in recipes {
        let binaries: Vec<&str> = match recipe.binary {
            Some(binary) => vec![binary],
            None => recipe
                .packages
                .iter()
                .map(|p| p.rsplit('/').next().unwrap_or(p))
                .collect(),
        };
        progress(&format!(
            "compiling {} {} ({})",
            recipe.name,
            recipe.version,
            binaries.join(", ")
        ));
        build_one(recipe, src, staging, env).await?;
    }
    Ok(())
}

async fn build_one(
    recipe: &Recipe,
    src: &Path,
    staging: &Path,
    env: &[(&str, String)],
) -> Result<(), Error> {
    let dir = src.join(recipe.name);
    std::fs::create_dir_all(&dir).map_err(super::write(&dir))?;
    let go_mod = dir.join("go.mod");
    std::fs::write(&go_mod, go_mod_of(recipe)).map_err(super::write(&go_mod))?;
    let out = staging.join(recipe.out);
    std::fs::create_dir_all(&out).map_err(super::write(&out))?;
    let out = format!("{}/{}", out.display(), recipe.binary.unwrap_or_default());
    let mut args = vec!["build", "-mod=mod", "-trimpath", "-o", &out];
    if !recipe.tags.is_empty() {
        args.extend(["-tags", recipe.tags]);
    }
    let pie = recipe.name == "runc";
    if pie {
        args.push("-buildmode=pie");
    }
    args.extend(["-ldflags", &recipe.ldflags]);
    args.extend(recipe.packages.iter().map(String::as_str));
    let mut env = env.to_vec();
    env.push((
        "CGO_ENABLED",
        if recipe.cgo { "1" } else { "0" }.to_string(),
    ));
    go(
        &dir,
        &args,
        &env,
        &format!("{} {}", recipe.module, recipe.version),
    )
    .await?;
    Ok(())
}

/// How each project's release is built (its Makefile or build scripts),
/// kept to what changes the binaries: cgo, tags, stamps. None of the
/// module zips carries its commit, so no binary names one.
fn recipes(
    version: &Version,
    runtime: &Runtime,
    staging: &[String],
    release_time: Option<&str>,
) -> Vec<Recipe> {
    let staging_version = format!("v0.{}.{}", version.minor, version.patch);
    // hack/lib/version.sh: the same stamps in component-base and client-go.
    let mut kube_ld = String::from("-s -w");
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        kube_ld.push_str(&format!(
            " -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={} -X {pkg}.gitMinor={} -X {pkg}.gitTreeState=clean -X {pkg}.gitCommit=",
            version.major, version.minor
        ));
        if let Some(time) = release_time {
            kube_ld.push_str(&format!(" -X {pkg}.buildDate={time}"));
        }
    }
    let containerd_module = if runtime.containerd_major() >= 2 {
        "github.com/containerd/containerd/v2"
    } else {
        "github.com/containerd/containerd"
    };
    // Makefile, STATIC=1: the containerd-static release.
    let containerd_ld = format!(
        "-s -w -X {containerd_module}/version.Version=v{v} -X {containerd_module}/version.Package={containerd_module} -extldflags -static",
        v = runtime.containerd
    );
    let mut all = vec![
        Recipe {
            name: "kubernetes",
            module: "k8s.io/kubernetes".into(),
            version: version.to_string(),
            replaces: staging
                .iter()
                .map(|m| (m.clone(), staging_version.clone()))
                .collect(),
            packages: super::COMPONENTS
                .iter()
                .map(|c| format!("k8s.io/kubernetes/cmd/{c}"))
                .collect(),
            out: "",
            binary: None,
            go: None,
            cgo: false,
            tags: "",
            ldflags: kube_ld,
        },
        Recipe {
            name: "etcd",
            module: "go.etcd.io/etcd/server/v3".into(),
            version: format!("v{}", runtime.etcd),
            replaces: Vec::new(),
            packages: vec!["go.etcd.io/etcd/server/v3".into()],
            out: "",
            binary: Some("etcd"),
            go: None,
            cgo: false,
            tags: "",
            ldflags: "-s -w".into(),
        },
        Recipe {
            name: "containerd",
            module: containerd_module.into(),
            version: format!("v{}", runtime.containerd),
            replaces: Vec::new(),
            packages: vec![format!("{containerd_module}/cmd/containerd")],
            out: "",
            binary: None,
            go: None,
            cgo: true,
            tags: "urfave_cli_no_docs osusergo netgo static_build",
            ldflags: containerd_ld.clone(),
        },
        Recipe {
            name: "containerd-shim",
            module: containerd_module.into(),
            version: format!("v{}", runtime.containerd),
            replaces: Vec::new(),
            packages: vec![format!("{containerd_module}/cmd/containerd-shim-runc-v2")],
            out: "",
            binary: None,
            go: None,
            cgo: false,
            tags: "urfave_cli_no_docs osusergo netgo static_build no_grpc",
            ldflags: containerd_ld,
        },
        // Makefile's `static`: seccomp through a static libseccomp, as a
        // static PIE. Without the libpathrs tag: that C library is no Go
        // module, and runc's pure-Go path handling stands in for it.
        Recipe {
            name: "runc",
            module: "github.com/opencontainers/runc".into(),
            version: format!("v{}", runtime.runc),
            replaces: Vec::new(),
            packages: vec!["github.com/opencontainers/runc".into()],
            out: "",
            binary: None,
            go: None,
            cgo: true,
            tags: "seccomp urfave_cli_no_docs netgo osusergo",
            ldflags: "-s -w -linkmode external -extldflags -static-pie".into(),
        },
    ];
    if let Some(cni) = &runtime.cni {
        let module = "github.com/containernetworking/plugins";
        all.push(Recipe {
            name: "cni",
            module: module.into(),
            version: format!("v{cni}"),
            replaces: Vec::new(),
            packages: runtime::CNI_PLUGINS
                .iter()
                .map(|(dir, _)| format!("{module}/plugins/{dir}"))
                .collect(),
            out: runtime::CNI_DIR,
            binary: None,
            go: None,
            cgo: false,
            tags: "",
            ldflags: format!("-s -w -X {module}/pkg/utils/buildversion.BuildVersion=v{cni}"),
        });
    }
    all
}

fn coredns_recipe(version: &str) -> Recipe {
    Recipe {
        name: "coredns",
        module: COREDNS_MODULE.into(),
        version: version.to_string(),
        replaces: Vec::new(),
        packages: vec![COREDNS_MODULE.into()],
        out: COREDNS_OUT,
        binary: None,
        go: None,
        cgo: false,
        tags: "",
        ldflags: "-s -w".into(),
    }
}

/// How an image of one binary runs it.
struct Binary<'a> {
    user: &'a str,
    capabilities: &'a [u32],
    exposed_ports: &'a [&'a str],
}

/// An image of the binary at `binary` alone, at its root, run as its
/// entrypoint, as upstream's distroless images are: written as `reference`
/// to the OCI archive `archive`.
fn write_image(binary: &Path, reference: &str, how: &Binary, archive: &Path) -> Result<(), Error> {
    let content = std::fs::read(binary).map_err(|source| Error::Read {
        path: binary.to_path_buf(),
        source,
    })?;
    if let Some(dir) = archive.parent() {
        std::fs::create_dir_all(dir).map_err(super::write(dir))?;
    }
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let entrypoint = format!("/{name}");
    super::oci::write_archive(
        reference,
        &[super::oci::LayerFile {
            path: name,
            content: &content,
            mode: 0o755,
            capabilities: how.capabilities,
        }],
        &super::oci::ImageConfig {
            entrypoint: &[&entrypoint],
            user: how.user,
            exposed_ports: how.exposed_ports,
        },
        super::host_arch(),
        archive,
    )
    .map_err(super::write(archive))
}

impl Cache {
    /// Builds an addon's image from its Go module into the OCI archive
    /// berth's cache keeps for it. The cache is untouched unless the image
    /// was made; dropping the future stops the build and leaves nothing
    /// behind.
    pub async fn source_image(
        &self,
        image: &FromSource,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<PathBuf, Error> {
        let dir = self.images_dir();
        let path = dir.join(image.archive());
        let found_go = Go::find().await?;
        std::fs::create_dir_all(&dir).map_err(super::write(&dir))?;
        let staging = super::Staging::new(dir.join(format!(
            ".build-{}-{}",
            image.binary(),
            std::process::id()
        )))?;
        let (src, env) = go_dirs(&staging.path)?;
        let found = download(&src, image.module, image.version, &env).await?;
        let module_dir = found.dir(image.module, image.version)?;
        let needs = read_go_mod(&found)?.go;
        found_go.can_build([(needs, image.module)])?;
        progress(&format!(
            "compiling {} {} from source into the image {}",
            image.binary(),
            image.version,
            image.image
        ));
        // In the module's own directory, as its release build is: its
        // go.mod's replace and exclude directives and its go.sum hold only
        // there (Traefik's replace forks of two modules). Read-only, as Go
        // keeps it.
        let binary = staging.path.join(image.binary());
        let out = binary.display().to_string();
        let package = match image.package.strip_prefix(image.module) {
            Some(rest) => format!(".{rest}"),
            None => image.package.to_string(),
        };
        let mut env = env.to_vec();
        env.push(("CGO_ENABLED", "0".to_string()));
        let args = [
            "build",
            "-mod=readonly",
            "-trimpath",
            "-o",
            &out,
            "-ldflags",
            &image.ldflags,
            &package,
        ];
        let what = format!("{} {}", image.module, image.version);
        go(&module_dir, &args, &env, &what).await?;
        let staged = staging.path.join(image.archive());
        write_image(
            &binary,
            &image.image,
            &Binary {
                user: image.user,
                capabilities: &[],
                exposed_ports: &[],
            },
            &staged,
        )?;
        std::fs::rename(&staged, &path).map_err(super::write(&path))?;
        Ok(path)
    }

    /// The CRDs of `crds` as one YAML file in berth's cache, taken from
    /// their Go module; fetched once.
    pub async fn crds(&self, crds: &Crds) -> Result<PathBuf, Error> {
        let dir = self.images_dir();
        let path = dir.join(crds.file_name());
        if path.exists() {
            return Ok(path);
        }
        std::fs::create_dir_all(&dir).map_err(super::write(&dir))?;
        let staging = super::Staging::new(dir.join(format!(
            ".crds-{}-{}",
            crds.version,
            std::process::id()
        )))?;
        let (src, env) = go_dirs(&staging.path)?;
        let found = download(&src, crds.module, crds.version, &env).await?;
        let from = found.dir(crds.module, crds.version)?.join(crds.dir);
        let text = joined_yaml(&from)?;
        if text.is_empty() {
            return Err(Error::Build {
                what: format!("{}@{}", crds.module, crds.version),
                output: format!("no YAML files in {}", crds.dir),
            });
        }
        let staged = staging.path.join(crds.file_name());
        std::fs::write(&staged, text).map_err(super::write(&staged))?;
        std::fs::rename(&staged, &path).map_err(super::write(&path))?;
        Ok(path)
    }
}

/// The `*.yaml` files of `dir`, by name, as one stream of documents.
fn joined_yaml(dir: &Path) -> Result<String, Error> {
    let read = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut text = String::new();
    for file in files {
        let content = std::fs::read_to_string(&file).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        text.push_str("---\n");
        text.push_str(&content);
        if !content.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRDs arrive as one stream of documents, by file name, other files
    /// left out.
    #[test]
    fn a_directory_of_yaml_becomes_one_stream_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "kind: B\n").unwrap();
        std::fs::write(dir.path().join("a.yaml"), "kind: A").unwrap();
        std::fs::write(dir.path().join("kustomization.yml"), "x: y\n").unwrap();
        std::fs::write(dir.path().join("README.md"), "no\n").unwrap();
        let text = joined_yaml(dir.path()).unwrap();
        assert_eq!(text, "---\nkind: A\n---\nkind: B\n");
    }

    #[test]
    fn go_versions_compare_as_releases() {
        let v = |s| GoVersion::parse(s).unwrap();
        assert_eq!(v("go1.26.8"), GoVersion(1, 26, 8));
        assert_eq!(v("1.26"), GoVersion(1, 26, 0));
        assert_eq!(v("go1.27rc1"), GoVersion(1, 27, 0));
        assert!(v("go1.26.8") > v("1.26.0"));
        assert!(v("go1.9.0") < v("1.26.0"));
        assert_eq!(GoVersion::parse("devel"), None);
    }

    #[test]
    fn a_release_go_mod_gives_its_go_and_its_staging_modules() {
        let text = "module k8s.io/kubernetes\n\ngo 1.26.0\n\ngodebug default=go1.26\n\nrequire (\n\tk8s.io/api v0.0.0\n)\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\nreplace k8s.io/kms => ./staging/src/k8s.io/kms\n";
        let parsed = parse_go_mod(text);
        assert_eq!(parsed.go, Some(GoVersion(1, 26, 0)));
        assert_eq!(
            parsed.staging,
            ["k8s.io/api", "k8s.io/client-go", "k8s.io/kms"]
        );
    }

    #[test]
    fn kubernetes_is_built_against_its_staging_modules_of_the_same_release_and_stamped() {
        let version: Version = "v1.37.2".parse().unwrap();
        let runtime = berth_node::supported(&version).unwrap().runtime();
        let staging = ["k8s.io/api".to_string(), "k8s.io/kubelet".to_string()];
        let all = recipes(&version, &runtime, &staging, Some("2026-10-27T12:01:04Z"));
        let mut kubernetes = all[0].clone();
        kubernetes.go = Some(GoVersion(1, 26, 0));
        let go_mod = go_mod_of(&kubernetes);
        // Without it Go would want go.mod files the pruned graph leaves out.
        assert!(go_mod.contains("\ngo 1.26.0\n"), "{go_mod}");
        assert!(
            go_mod.contains("require k8s.io/kubernetes v1.37.2\n"),
            "{go_mod}"
        );
        assert!(
            go_mod.contains("\tk8s.io/api => k8s.io/api v0.37.2\n"),
            "{go_mod}"
        );
        assert!(
            go_mod.contains("\tk8s.io/kubelet => k8s.io/kubelet v0.37.2\n"),
            "{go_mod}"
        );
        for pkg in [
            "k8s.io/component-base/version",
            "k8s.io/client-go/pkg/version",
        ] {
            for stamp in [
                "gitVersion=v1.37.2",
                "gitMajor=1",
                "gitMinor=37",
                "gitTreeState=clean",
                "buildDate=2026-10-27T12:01:04Z",
            ] {
                assert!(
                    kubernetes.ldflags.contains(&format!("-X {pkg}.{stamp}")),
                    "{pkg}.{stamp}"
                );
            }
        }
        assert_eq!(kubernetes.packages.len(), super::super::COMPONENTS.len());
        assert!(!kubernetes.cgo, "Kubernetes' server binaries are static");
    }

    #[test]
    fn the_runtime_is_built_as_its_projects_release_it() {
        let version: Version = "v1.37.2".parse().unwrap();
        let runtime = berth_node::supported(&version).unwrap().runtime();
        let all = recipes(&version, &runtime, &[], None);
        let by_name = |n: &str| all.iter().find(|r| r.name == n).unwrap().clone();
        let runc = by_name("runc");
        assert!(
            runc.tags.split(' ').any(|t| t == "seccomp"),
            "runc without seccomp"
        );
        assert!(runc.cgo && runc.ldflags.contains("-static-pie"));
        let containerd = by_name("containerd");
        assert_eq!(containerd.module, "github.com/containerd/containerd/v2");
        assert!(
            containerd
                .ldflags
                .contains(&format!("version.Version=v{}", runtime.containerd))
        );
        assert!(by_name("containerd-shim").tags.contains("no_grpc"));
        assert_eq!(by_name("etcd").version, format!("v{}", runtime.etcd));
        let cni = by_name("cni");
        assert_eq!(cni.packages.len(), runtime::CNI_PLUGINS.len());
        assert!(cni.ldflags.contains("BuildVersion=v1.9.1"));
        // containerd 1.x is a module without a major suffix.
        let old = recipes(
            &version,
            &berth_node::supported(&"v1.29.2".parse().unwrap())
                .unwrap()
                .runtime(),
            &[],
            None,
        );
        assert_eq!(old[2].module, "github.com/containerd/containerd");
    }
}
