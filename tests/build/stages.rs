//! Multi-stage builds, build args, heredocs, WORKDIR/USER/ENV, ONBUILD,
//! `.dockerignore`, `--target`, ADD of a local archive.

use crate::{built_id, Host};
use strata::scratch::FsKind;

const MULTI: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox:latest
FROM ${BASE} AS builder
ARG GREETING=hello
ENV OUT=/out
WORKDIR /src
COPY --chmod=755 <<EOF /src/gen.sh
#!/bin/sh
mkdir -p $OUT
printf '#!/bin/sh\necho %s from a scratch image\n' "$1" > $OUT/hello
chmod 755 $OUT/hello
EOF
RUN ./gen.sh "$GREETING" && test -x $OUT/hello
RUN <<EOS
set -e
echo compiled > /src/stamp
EOS

FROM scratch AS final
COPY --from=builder /bin/busybox /bin/busybox
COPY --from=builder /out/hello /hello
USER 65534
ENTRYPOINT ["/bin/busybox", "sh", "/hello"]
"#;

#[test]
fn multi_stage_into_scratch_runs() {
    let Some(h) = Host::new(FsKind::Xfs, "overlay") else { return };
    let df = h.dockerfile("Dockerfile", MULTI);
    let out = h.built(&["-t", "hello:ms", "--build-arg", "GREETING=howdy", "-f", &df]);
    assert!(out.contains("Step 1/13 : ARG BASE=busybox:latest"), "{out}");
    assert!(out.contains(" ---> Running in "), "RUN uses an intermediate container: {out}");
    assert!(out.contains("Removing intermediate container"), "{out}");
    assert_eq!(h.env.ok(&["run", "--rm", "hello:ms"]), "howdy from a scratch image\n");
    // The final image has only the two COPY layers: nothing of the builder.
    let inspect: serde_json::Value = serde_json::from_str(&h.env.ok(&["inspect", "hello:ms"])).unwrap();
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2, "{inspect}");
    assert_eq!(inspect[0]["Config"]["User"], "65534");
    // No intermediate container is left.
    assert_eq!(h.env.ok(&["ps", "-aq"]), "");
    // --target stops at the builder stage, whose filesystem has the stamp.
    let out = h.built(&["--target", "builder", "-t", "hello:builder", "-f", &df]);
    assert!(out.contains("Using cache"), "{out}");
    assert!(!out.contains("FROM scratch"), "the final stage is not built: {out}");
    let stamp = h.env.ok(&["run", "--rm", "hello:builder", "cat", "/src/stamp"]);
    assert_eq!(stamp, "compiled\n");
    // A different build arg busts the RUN that uses it.
    let out = h.built(&["-t", "hello:ms2", "--build-arg", "GREETING=hi", "-f", &df]);
    assert_eq!(h.env.ok(&["run", "--rm", "hello:ms2"]), "hi from a scratch image\n");
    let first: serde_json::Value = serde_json::from_str(&h.env.ok(&["inspect", "hello:ms"])).unwrap();
    let first = first[0]["Id"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
    assert!(!first.starts_with(&built_id(&out)), "a new image: {out}");
}

const CONFIG: &str = r#"FROM busybox:latest
ONBUILD RUN echo triggered > /onbuild
LABEL org.example.name="strata test" version=1
ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin
ENV APP_HOME=/opt/app PATH=/opt/app/bin:$PATH
WORKDIR $APP_HOME
COPY app/ bin/
COPY --chown=nobody:nogroup app/main.sh /opt/owned/
ADD data.tar.gz /srv/
EXPOSE 8080 53/udp
VOLUME ["/var/lib/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD ["/bin/true"]
SHELL ["/bin/sh", "-ec"]
RUN test "$(pwd)" = /opt/app && echo ran > ran.txt
CMD ["main.sh"]
"#;

#[test]
fn instructions_config_and_context_rules() {
    let Some(h) = Host::new(FsKind::Ext4, "overlay") else { return };
    h.put("app/main.sh", "#!/bin/sh\necho main\n", 0o755);
    h.put("app/secret.key", "do not ship\n", 0o600);
    h.put("app/notes.md", "notes\n", 0o644);
    h.put("app/README.md", "readme\n", 0o644);
    h.put(".dockerignore", "**/*.key\napp/*.md\n!app/README.md\n", 0o644);
    // A local archive for ADD (auto-extracted).
    let tarball = h.ctx.join("data.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&tarball).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        crate::common::file(&mut b, "data/one.txt", b"one\n", 0o640);
        b.into_inner().unwrap().finish().unwrap();
    }
    let df = h.dockerfile("Dockerfile", CONFIG);
    let out = h.built(&["-t", "cfg:1", "-f", &df]);
    let inspect: serde_json::Value = serde_json::from_str(&h.env.ok(&["inspect", "cfg:1"])).unwrap();
    let c = &inspect[0]["Config"];
    assert_eq!(c["WorkingDir"], "/opt/app", "{c}");
    assert_eq!(c["Labels"]["org.example.name"], "strata test");
    let env = c["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e.as_str().unwrap() == "PATH=/opt/app/bin:/usr/sbin:/usr/bin:/sbin:/bin"), "{c}");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some(), "{c}");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "/bin/true"]));
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo triggered > /onbuild"]));
    // .dockerignore: the key and notes.md are excluded, README.md re-included.
    let ls = h.env.ok(&["run", "--rm", "cfg:1", "ls", "/opt/app/bin"]);
    assert_eq!(ls, "README.md\nmain.sh\n", "{out}");
    assert_eq!(h.env.ok(&["run", "--rm", "cfg:1"]), "main\n", "CMD found through PATH");
    let owned = h.env.ok(&["run", "--rm", "cfg:1", "stat", "-c", "%u:%g %a", "/opt/owned/main.sh"]);
    assert_eq!(owned, "65534:65534 755\n");
    let data = h.env.ok(&["run", "--rm", "cfg:1", "stat", "-c", "%a %s", "/srv/data/one.txt"]);
    assert_eq!(data, "640 4\n", "ADD extracted the archive");
    assert_eq!(h.env.ok(&["run", "--rm", "cfg:1", "cat", "/opt/app/ran.txt"]), "ran\n");
    // ONBUILD fires in a child build and is not inherited further.
    let child = h.dockerfile("Dockerfile.child", "FROM cfg:1\nCMD [\"cat\", \"/onbuild\"]\n");
    let out = h.built(&["-t", "child:1", "-f", &child]);
    assert!(out.contains("# Executing 1 build trigger"), "{out}");
    assert_eq!(h.env.ok(&["run", "--rm", "child:1"]), "triggered\n");
    let inspect: serde_json::Value = serde_json::from_str(&h.env.ok(&["inspect", "child:1"])).unwrap();
    assert!(inspect[0]["Config"]["OnBuild"].is_null(), "{}", inspect[0]["Config"]);
    // Metadata-only steps are 0B history rows; WORKDIR created its directory.
    let hist = h.env.ok(&["history", "--no-trunc", "cfg:1"]);
    assert!(hist.lines().any(|l| l.contains("#(nop)  EXPOSE") && l.contains(" 0B")), "{hist}");
    assert!(hist.lines().any(|l| l.contains("#(nop) WORKDIR /opt/app")), "{hist}");
    assert!(hist.lines().any(|l| l.contains("/bin/sh -ec test \"$(pwd)\"")), "RUN shown through SHELL: {hist}");
}

/// Docker's user resolution for `USER name`: the primary group is a
/// supplementary group too (buildah prints the same `groups=`).
const USER_GROUPS: &str = r#"FROM busybox:latest
RUN echo 'app:x:1234:1234::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1234:' >> /etc/group && echo 'staff:x:50:app' >> /etc/group
USER app
RUN id
"#;

#[test]
fn user_name_gets_its_primary_and_member_groups() {
    let Some(h) = Host::new(FsKind::Xfs, "overlay") else { return };
    let df = h.dockerfile("Dockerfile.user", USER_GROUPS);
    let out = h.built(&["-t", "user:groups", "-f", &df]);
    // The kernel keeps the group list sorted.
    assert!(out.contains("uid=1234(app) gid=1234(app) groups=50(staff),1234(app)"), "{out}");
    let id = h.env.ok(&["run", "--rm", "user:groups", "id", "-G"]);
    let mut groups: Vec<&str> = id.split_whitespace().collect();
    groups.sort_unstable();
    assert_eq!(groups, ["1234", "50"], "{id}");
}
