use super::*;

fn kinds(text: &str) -> Vec<Kind> {
    parse(text).unwrap_or_else(|e| panic!("{e}")).instructions.into_iter().map(|i| i.kind).collect()
}

fn err(text: &str) -> ParseError {
    parse(text).expect_err("expected a parse error")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

fn from(image: &str, alias: Option<&str>) -> Kind {
    Kind::From { image: image.into(), alias: alias.map(Into::into), platform: None }
}

fn copy(srcs: &[&str], dest: &str) -> CopySpec {
    CopySpec { srcs: s(srcs), dest: dest.into(), from: None, chown: None, chmod: None, flags: vec![], heredocs: vec![] }
}

fn vars(name: &str) -> Option<String> {
    match name {
        "A" => Some("a".into()),
        "EMPTY" => Some(String::new()),
        "P" => Some("/usr/bin".into()),
        _ => None,
    }
}

fn ex(word: &str) -> Result<String, ParseError> {
    expand(word, &vars, '\\')
}

#[test]
fn seed_busybox_copy() {
    let df = parse("FROM busybox:latest\nCOPY . /app\n").unwrap();
    assert_eq!(df.escape, '\\');
    assert_eq!(df.syntax, None);
    assert_eq!(df.instructions[0].line, 1);
    assert_eq!(df.instructions[1].line, 2);
    assert_eq!(df.instructions[1].original, "COPY . /app");
    assert_eq!(
        df.instructions.into_iter().map(|i| i.kind).collect::<Vec<_>>(),
        vec![from("busybox:latest", None), Kind::Copy(copy(&["."], "/app"))]
    );
}

#[test]
fn seed_hello_cmd() {
    assert_eq!(
        kinds("FROM acme/my-base-image:1.0\nCMD /app/hello.sh\n"),
        vec![from("acme/my-base-image:1.0", None), Kind::Cmd(Command::Shell("/app/hello.sh".into()))]
    );
}

#[test]
fn multi_stage_with_copy_flags() {
    let k = kinds(
        "# syntax=docker/dockerfile:1\n\
         FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n\
         RUN --mount=type=cache,target=/root/.cache --network=host go build -o /out/app .\n\
         from alpine as run\n\
         COPY --from=build --chown=app:app --chmod=0755 --link /out/app /usr/local/bin/\n\
         ENTRYPOINT [\"/usr/local/bin/app\", \"--serve\"]\n",
    );
    assert_eq!(
        k[0],
        Kind::From {
            image: "golang:1.22".into(),
            alias: Some("build".into()),
            platform: Some("$BUILDPLATFORM".into())
        }
    );
    assert_eq!(
        k[1],
        Kind::Run {
            cmd: Command::Shell("go build -o /out/app .".into()),
            flags: vec![("mount".into(), "type=cache,target=/root/.cache".into()), ("network".into(), "host".into())],
            heredocs: vec![],
        }
    );
    assert_eq!(k[2], from("alpine", Some("run")));
    assert_eq!(
        k[3],
        Kind::Copy(CopySpec {
            from: Some("build".into()),
            chown: Some("app:app".into()),
            chmod: Some("0755".into()),
            flags: vec![("link".into(), "true".into())],
            ..copy(&["/out/app"], "/usr/local/bin/")
        })
    );
    assert_eq!(k[4], Kind::Entrypoint(Command::Exec(s(&["/usr/local/bin/app", "--serve"]))));
}

#[test]
fn syntax_directive_is_recorded() {
    let df = parse("# syntax=docker/dockerfile:1.7\nFROM a\n").unwrap();
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1.7"));
}

#[test]
fn continuation_skips_comments_and_blank_lines() {
    let df = parse(
        "FROM a\n\
         RUN apt-get update && \\\n\
         # a comment inside\n\
         \n\
         \x20   apt-get install -y \\\n\
         \x20     curl   \n\
         USER app\n",
    )
    .unwrap();
    let run = &df.instructions[1];
    assert_eq!(run.line, 2);
    assert_eq!(run.original, "RUN apt-get update &&     apt-get install -y       curl");
    assert_eq!(
        run.kind,
        Kind::Run {
            cmd: Command::Shell("apt-get update &&     apt-get install -y       curl".into()),
            flags: vec![],
            heredocs: vec![]
        }
    );
    assert_eq!(df.instructions[2].line, 7);
    assert_eq!(df.instructions[2].kind, Kind::User("app".into()));
}

#[test]
fn backtick_escape_with_windows_paths() {
    let df = parse(
        "# escape=`\n\
         \n\
         FROM mcr.microsoft.com/windows/servercore\n\
         COPY testfile.txt c:\\\n\
         RUN dir c:\\ `\n\
         \x20   && echo done\n",
    )
    .unwrap();
    assert_eq!(df.escape, '`');
    let k: Vec<Kind> = df.instructions.into_iter().map(|i| i.kind).collect();
    assert_eq!(k[1], Kind::Copy(copy(&["testfile.txt"], "c:\\")));
    assert_eq!(
        k[2],
        Kind::Run { cmd: Command::Shell("dir c:\\     && echo done".into()), flags: vec![], heredocs: vec![] }
    );
}

#[test]
fn directives_only_at_the_top() {
    // After an instruction, `# escape=` is a comment, and `\` still continues.
    let df = parse("FROM a\n# escape=`\nRUN a \\\n b\n").unwrap();
    assert_eq!(df.escape, '\\');
    assert_eq!(df.instructions.len(), 2);
    // A blank line ends the directives too.
    assert_eq!(parse("\n# escape=`\nFROM a\n").unwrap().escape, '\\');
    // The key is case-insensitive; an unknown directive ends them.
    assert_eq!(parse("# ESCAPE=`\nFROM a\n").unwrap().escape, '`');
    assert_eq!(parse("# foo=bar\n# escape=`\nFROM a\n").unwrap().escape, '\\');
    let e = err("# escape=`\n# escape=\\\nFROM a\n");
    assert_eq!((e.line, e.column), (2, 1));
}

#[test]
fn heredoc_single() {
    let k = kinds("FROM a\nRUN <<EOF\necho hi\n  echo $HOME\nEOF\nUSER x\n");
    assert_eq!(
        k[1],
        Kind::Run {
            cmd: Command::Shell("<<EOF".into()),
            flags: vec![],
            heredocs: vec![Heredoc {
                name: "EOF".into(),
                body: "echo hi\n  echo $HOME\n".into(),
                strip_tabs: false,
                expand: true
            }],
        }
    );
    assert_eq!(k[2], Kind::User("x".into()));
}

#[test]
fn heredoc_multiple_on_one_line() {
    let df = parse("FROM a\nCOPY <<one <<two /dest/\nfirst\none\n# not a comment\ntwo\nUSER x\n").unwrap();
    let Kind::Copy(spec) = &df.instructions[1].kind else { panic!("not COPY") };
    assert_eq!(spec.srcs, s(&["<<one", "<<two"]));
    assert_eq!(spec.dest, "/dest/");
    assert_eq!(spec.heredocs.len(), 2);
    assert_eq!((spec.heredocs[0].name.as_str(), spec.heredocs[0].body.as_str()), ("one", "first\n"));
    assert_eq!((spec.heredocs[1].name.as_str(), spec.heredocs[1].body.as_str()), ("two", "# not a comment\n"));
    assert_eq!(df.instructions[2].line, 7);
}

#[test]
fn heredoc_strip_tabs_and_quoted_delimiter() {
    let k = kinds("FROM a\nRUN <<-EOF\n\techo a\n\t\techo b\n\tEOF\nRUN cat <<'X' > /f\n$NOPE\nX\n");
    let Kind::Run { heredocs, .. } = &k[1] else { panic!() };
    assert_eq!(
        heredocs[0],
        Heredoc { name: "EOF".into(), body: "echo a\necho b\n".into(), strip_tabs: true, expand: true }
    );
    let Kind::Run { cmd, heredocs, .. } = &k[2] else { panic!() };
    assert_eq!(cmd, &Command::Shell("cat <<'X' > /f".into()));
    assert_eq!(heredocs[0], Heredoc { name: "X".into(), body: "$NOPE\n".into(), strip_tabs: false, expand: false });
    let k = kinds("FROM a\nRUN <<\"E\"\nx\nE\n");
    let Kind::Run { heredocs, .. } = &k[1] else { panic!() };
    assert!(!heredocs[0].expand);
}

#[test]
fn heredoc_not_in_exec_form() {
    let k = kinds("FROM a\nRUN [\"sh\", \"-c\", \"cat <<EOF\"]\nUSER x\n");
    assert_eq!(k[1], Kind::Run { cmd: Command::Exec(s(&["sh", "-c", "cat <<EOF"])), flags: vec![], heredocs: vec![] });
    assert_eq!(k.len(), 3);
}

#[test]
fn env_and_label_quoting() {
    let k = kinds(
        "FROM a\n\
         ENV K=V K2=\"v 2\" K3=v\\ 3\n\
         ENV LEGACY some value here\n\
         LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0 desc='a b'\n",
    );
    assert_eq!(
        k[1],
        Kind::Env(vec![("K".into(), "V".into()), ("K2".into(), "\"v 2\"".into()), ("K3".into(), "v\\ 3".into())])
    );
    assert_eq!(k[2], Kind::Env(vec![("LEGACY".into(), "some value here".into())]));
    assert_eq!(
        k[3],
        Kind::Label(vec![
            ("\"com.example.vendor\"".into(), "\"ACME Inc\"".into()),
            ("version".into(), "1.0".into()),
            ("desc".into(), "'a b'".into())
        ])
    );
    // The builder's expansion removes the quotes.
    let Kind::Env(env) = &k[1] else { panic!() };
    let values: Vec<String> = env.iter().map(|(_, v)| ex(v).unwrap()).collect();
    assert_eq!(values, s(&["V", "v 2", "v 3"]));
    assert_eq!(ex("'$A b'").unwrap(), "$A b");
    assert_eq!(ex("\"$A b\"").unwrap(), "a b");
}

#[test]
fn arg_before_from() {
    let k = kinds("ARG VERSION=1.0 OTHER\nFROM base:${VERSION}\nARG VERSION\n");
    assert_eq!(k[0], Kind::Arg(vec![("VERSION".into(), Some("1.0".into())), ("OTHER".into(), None)]));
    assert_eq!(k[1], from("base:${VERSION}", None));
    assert_eq!(k[2], Kind::Arg(vec![("VERSION".into(), None)]));
}

#[test]
fn remaining_instructions() {
    let k = kinds(
        "FROM a\n\
         SHELL [\"powershell\", \"-Command\"]\n\
         EXPOSE 80 443/tcp\n\
         VOLUME [\"/a\"]\n\
         VOLUME /a /b\n\
         STOPSIGNAL SIGTERM\n\
         HEALTHCHECK NONE\n\
         HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/\n\
         ONBUILD RUN make\n\
         MAINTAINER Jane <jane@example.com>\n\
         WORKDIR /app dir\n\
         CMD [not json\n\
         ADD --checksum=sha256:abc https://example.com/a.tgz /\n\
         COPY [\"a b\", \"/dst/\"]\n",
    );
    assert_eq!(k[1], Kind::Shell(s(&["powershell", "-Command"])));
    assert_eq!(k[2], Kind::Expose(s(&["80", "443/tcp"])));
    assert_eq!(k[3], Kind::Volume(s(&["/a"])));
    assert_eq!(k[4], Kind::Volume(s(&["/a", "/b"])));
    assert_eq!(k[5], Kind::StopSignal("SIGTERM".into()));
    assert_eq!(k[6], Kind::Healthcheck(None));
    assert_eq!(
        k[7],
        Kind::Healthcheck(Some(Healthcheck {
            flags: vec![("interval".into(), "5s".into()), ("retries".into(), "3".into())],
            cmd: Command::Shell("curl -f http://localhost/".into()),
        }))
    );
    assert_eq!(
        k[8],
        Kind::Onbuild(Box::new(Kind::Run { cmd: Command::Shell("make".into()), flags: vec![], heredocs: vec![] }))
    );
    assert_eq!(k[9], Kind::Maintainer("Jane <jane@example.com>".into()));
    assert_eq!(k[10], Kind::Workdir("/app dir".into()));
    assert_eq!(k[11], Kind::Cmd(Command::Shell("[not json".into())));
    assert_eq!(
        k[12],
        Kind::Add(CopySpec {
            flags: vec![("checksum".into(), "sha256:abc".into())],
            ..copy(&["https://example.com/a.tgz"], "/")
        })
    );
    assert_eq!(k[13], Kind::Copy(copy(&["a b"], "/dst/")));
}

#[test]
fn instructions_are_case_insensitive() {
    let k = kinds("from a AS b\nrun echo Hi\nCmd [\"X\"]\n");
    assert_eq!(k[0], from("a", Some("b")));
    assert_eq!(k[1], Kind::Run { cmd: Command::Shell("echo Hi".into()), flags: vec![], heredocs: vec![] });
    assert_eq!(k[2], Kind::Cmd(Command::Exec(s(&["X"]))));
}

#[test]
fn expand_substitutions() {
    assert_eq!(ex("$A").unwrap(), "a");
    assert_eq!(ex("${A}").unwrap(), "a");
    assert_eq!(ex("x$A-y").unwrap(), "xa-y");
    assert_eq!(ex("$UNSET|${UNSET}").unwrap(), "|");
    assert_eq!(ex("${UNSET:-d}").unwrap(), "d");
    assert_eq!(ex("${EMPTY:-d}").unwrap(), "d");
    assert_eq!(ex("${EMPTY-d}").unwrap(), "");
    assert_eq!(ex("${A:-d}").unwrap(), "a");
    assert_eq!(ex("${A:+x}").unwrap(), "x");
    assert_eq!(ex("${EMPTY:+x}").unwrap(), "");
    assert_eq!(ex("${EMPTY+x}").unwrap(), "x");
    assert_eq!(ex("${UNSET:+x}").unwrap(), "");
    assert_eq!(ex("${UNSET:-$P/bin}").unwrap(), "/usr/bin/bin");
    assert_eq!(ex("${UNSET:-${A}}").unwrap(), "a");
    assert_eq!(ex("\\$A").unwrap(), "$A");
    assert_eq!(ex("$").unwrap(), "$");
    assert_eq!(ex("a$1").unwrap(), "a$1");
    assert_eq!(expand("`$A", &vars, '`').unwrap(), "$A");
    assert_eq!(expand("C:\\$A", &vars, '`').unwrap(), "C:\\a");
    let e = ex("ab${A").unwrap_err();
    assert_eq!((e.line, e.column), (1, 3));
    assert!(e.message.contains("missing '}'"), "{e}");
    assert!(ex("${A:-x").is_err());
    assert!(ex("${}").is_err());
    assert!(ex("${A%x}").is_err());
    assert!(ex("\"open").is_err());
    assert_eq!(ex("${UNSET:?must be set}").unwrap_err().message, "UNSET: must be set");
}

#[test]
fn error_unknown_instruction() {
    let e = err("FROM a\n  FOO bar\n");
    assert_eq!((e.line, e.column), (2, 3));
    assert_eq!(e.message, "unknown instruction: FOO");
    assert_eq!(e.to_string(), "Dockerfile:2:3: unknown instruction: FOO");
    assert_eq!(e.with_file("ctx/Dockerfile.dev").to_string(), "ctx/Dockerfile.dev:2:3: unknown instruction: FOO");
}

#[test]
fn error_unterminated_heredoc() {
    let e = err("FROM a\nRUN echo && cat <<EOF\nline\nEO\n");
    assert_eq!((e.line, e.column), (2, 17));
    assert!(e.message.starts_with("unterminated heredoc <<EOF"), "{e}");
}

#[test]
fn error_bad_shell_json() {
    let e = err("FROM a\nSHELL /bin/bash -c\n");
    assert_eq!((e.line, e.column), (2, 7));
    assert_eq!(e.message, "SHELL requires the arguments to be in JSON form");
    let e = err("FROM a\nSHELL [\"sh\", 1]\n");
    assert_eq!((e.line, e.column), (2, 7));
}

#[test]
fn error_missing_from() {
    let e = err("ARG X\n\nRUN echo hi\nFROM a\n");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.starts_with("no FROM before RUN"), "{e}");
}

#[test]
fn error_copy_with_one_argument() {
    let e = err("FROM a\nCOPY --chown=1:1 onlyone\n");
    assert_eq!((e.line, e.column), (2, 1));
    assert!(e.message.starts_with("COPY requires at least two arguments"), "{e}");
    assert!(parse("FROM a\nADD [\"x\"]\n").is_err());
}

#[test]
fn error_unknown_flag() {
    let e = err("FROM a\nCOPY --from=b --bogus=1 x /y\n");
    assert_eq!((e.line, e.column), (2, 15));
    assert_eq!(e.message, "unknown flag: --bogus");
    // On a continuation line the column is within that line.
    let e = err("FROM a\nRUN \\\n  --netwrk=host true\n");
    assert_eq!((e.line, e.column), (3, 3));
    let e = err("FROM --plat=x a\n");
    assert_eq!((e.line, e.column), (1, 6));
    assert!(parse("FROM a\nRUN --network echo\n").is_err(), "string flag needs a value");
    assert!(parse("FROM a\nCOPY --from=a --from=b x /y\n").is_err(), "duplicate flag");
}

#[test]
fn error_no_instructions() {
    for text in ["", "\n\n", "# only a comment\n", "# syntax=x\n"] {
        assert_eq!(err(text).message, "file with no instructions", "{text:?}");
    }
}

#[test]
fn keyword_names_the_instruction() {
    let df = parse(SAMPLE).unwrap();
    let kws: Vec<&str> = df.instructions.iter().map(|i| i.kind.keyword()).collect();
    assert_eq!(kws, ["ARG", "FROM", "ENV", "RUN", "COPY", "LABEL", "HEALTHCHECK", "ONBUILD", "CMD"]);
    for ins in &df.instructions {
        assert!(ins.original.to_ascii_uppercase().starts_with(ins.kind.keyword()));
    }
}

#[test]
fn other_errors() {
    assert!(parse("FROM a b\n").is_err());
    assert!(parse("FROM a AS 1bad\n").is_err());
    assert!(parse("FROM a\nONBUILD FROM b\n").is_err());
    assert!(parse("FROM a\nONBUILD ONBUILD RUN x\n").is_err());
    assert!(parse("FROM a\nONBUILD MAINTAINER x\n").is_err());
    assert!(parse("FROM a\nHEALTHCHECK NONE x\n").is_err());
    assert!(parse("FROM a\nHEALTHCHECK FOO x\n").is_err());
    assert!(parse("FROM a\nENV\n").is_err());
    assert!(parse("FROM a\nENV K\n").is_err());
    assert!(parse("FROM a\nENV =v\n").is_err());
    assert!(parse("FROM a\nCMD\n").is_err());
    assert!(parse("FROM a\nWORKDIR\n").is_err());
    assert!(parse("# escape=x\nFROM a\n").is_err());
}

const SAMPLE: &str = "# syntax=docker/dockerfile:1\n\
# escape=\\\n\
ARG BASE=alpine:3.19\n\
FROM --platform=$BUILDPLATFORM ${BASE} AS build\n\
ENV A=1 B=\"two words\" \\\n\
    C='x'\n\
# comment\n\
RUN --mount=type=cache,target=/c <<-EOF\n\
\techo \"$A\"\n\
\tEOF\n\
COPY --from=build --chown=1:1 [\"a b\", \"/dst/\"]\n\
LABEL k=v \"q\"=\"r s\"\n\
HEALTHCHECK --interval=5s CMD [\"true\"]\n\
ONBUILD COPY . /x\n\
CMD [\"/bin/app\"]\n";

#[test]
fn sample_parses() {
    let df = parse(SAMPLE).unwrap();
    assert_eq!(df.instructions.len(), 9);
}

#[test]
fn never_panics_on_prefixes_or_noise() {
    for (end, _) in SAMPLE.char_indices() {
        let _ = parse(&SAMPLE[..end]);
    }
    const TOKENS: &[&str] = &[
        "FROM",
        "RUN",
        "COPY",
        "ADD",
        "ENV",
        "ARG",
        "LABEL",
        "CMD",
        "SHELL",
        "ONBUILD",
        "HEALTHCHECK",
        "NONE",
        "AS",
        "EXPOSE",
        "VOLUME",
        "WORKDIR",
        "USER",
        "STOPSIGNAL",
        "MAINTAINER",
        "ENTRYPOINT",
        "CMD",
        " ",
        " ",
        "\t",
        "\n",
        "\n",
        "\r\n",
        "\\",
        "`",
        "#",
        "# escape=`",
        "# syntax=x",
        "=",
        "\"",
        "'",
        "[",
        "]",
        ",",
        "[\"a\"]",
        "<<",
        "<<-",
        "<<EOF",
        "EOF",
        "<<'Q'",
        "Q",
        "--from=a",
        "--chown=",
        "--",
        "--link",
        "--bogus",
        "$",
        "${",
        "}",
        ":-",
        ":+",
        "x",
        "/a/b",
        "é",
        "\u{feff}",
        "日本",
        "0",
    ];
    // Seeded, so the corpus is the same on every run.
    let mut rng = crate::rng::Rng::new(0x5eed_cafe_f00d_d00d);
    for _ in 0..2000 {
        let n = rng.index(40);
        // Most inputs start valid so the noise reaches the instruction parsers.
        let mut text = String::from(["", "FROM a\n", "FROM a\nRUN ", "FROM a\nCOPY "][rng.index(4)]);
        text.extend((0..n).map(|_| TOKENS[rng.index(TOKENS.len())]));
        if let Ok(df) = parse(&text) {
            // Whatever parsed must expand without panicking too.
            for ins in &df.instructions {
                let _ = expand(&ins.original, &vars, df.escape);
            }
        }
    }
}

#[test]
fn one_instruction_needs_no_from() {
    let i = parse_instruction("  cmd [\"a\"]").unwrap();
    assert_eq!(i.kind, Kind::Cmd(Command::Exec(s(&["a"]))));
    assert_eq!((i.line, i.column), (1, 3));
    let i = parse_instruction("ENV A=1 \\\n  B=2").unwrap();
    assert_eq!(i.kind, Kind::Env(vec![("A".into(), "1".into()), ("B".into(), "2".into())]));
    assert_eq!(parse_instruction("").unwrap_err().message, "no instruction");
    let e = parse_instruction("USER a\n\nUSER b").unwrap_err();
    assert_eq!((e.line, e.column, e.message.as_str()), (3, 1, "more than one instruction"));
    assert_eq!(parse_instruction("FROB x").unwrap_err().message, "unknown instruction: FROB");
}

#[test]
fn unquote_removes_quotes_and_keeps_variables() {
    assert_eq!(unquote(r#""two words" 'x$y' \$z $HOME"#, '\\').unwrap(), "two words x$y $z $HOME");
    assert_eq!(unquote("\"open", '\\').unwrap_err().message, "unterminated double quote");
}
