use super::*;

#[test]
fn command_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn render_flags_parse() {
    let cli = Cli::try_parse_from([
        "multiproc-exporter",
        "render",
        "--dir",
        "/x",
        "--format",
        "openmetrics",
    ])
    .unwrap();
    let Some(Command::Render(r)) = cli.command else {
        panic!("render expected")
    };
    assert_eq!(r.dir, Some(PathBuf::from("/x")));
    assert_eq!(r.format, FormatArg::Openmetrics);
}

#[test]
fn serve_is_the_default() {
    let cli = Cli::try_parse_from([
        "multiproc-exporter",
        "--dir",
        "/d",
        "--web.listen-address",
        "127.0.0.1:0",
    ])
    .unwrap();
    assert!(cli.command.is_none());
    assert_eq!(cli.serve.dir, Some(PathBuf::from("/d")));
    assert_eq!(cli.serve.header_timeout, Duration::from_secs(10));
    assert_eq!(cli.serve.write_timeout, Duration::from_secs(30));
    // `--demo` with an explicit `--dir` parses, and validation rejects it.
    let cli = Cli::try_from_args(["multiproc-exporter", "--dir", "/d", "--demo"]).unwrap();
    assert_eq!(cli.serve.validate().unwrap_err(), ConfigError::DemoWithDir);
}

#[test]
fn durations_and_addresses() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("x s").is_err());
    assert_eq!(listen_addresses(":9867").unwrap().len(), 2);
    assert_eq!(listen_addresses("127.0.0.1:80").unwrap()[0].port(), 80);
    assert!(listen_addresses("nonsense").is_err());
    assert!(check_telemetry_path("/healthz").is_err());
    assert!(check_telemetry_path("metrics").is_err());
    assert!(check_telemetry_path("/m").is_ok());
}

#[test]
fn bad_format_is_a_usage_error() {
    let err = Cli::try_parse_from(["multiproc-exporter", "render", "--format", "xml"]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn durations_print_as_they_are_written() {
    for s in ["500ms", "10s", "1s", "2m", "1h", "90s", "1500ms", "0s"] {
        assert_eq!(s.parse::<DurationArg>().unwrap().to_string(), s);
    }
    let odd = DurationArg(Duration::from_micros(1500));
    assert_eq!(odd.to_string().parse::<DurationArg>(), Ok(odd));
}

#[test]
fn defaults_are_the_flags_defaults() {
    assert_eq!(DEFAULT_LISTEN_ADDRESS, format!(":{DEFAULT_PORT}"));
    let cli = Cli::try_parse_from(["multiproc-exporter", "--dir", "/d"]).unwrap();
    let serve = cli.serve.validate().unwrap();
    assert_eq!(serve.listen_address, DEFAULT_LISTEN_ADDRESS);
    // ServeConfig has no PartialEq (compact::Settings has none): compare the Debug.
    let defaults = ServeConfig::new("/d");
    assert_eq!(format!("{:?}", serve.config), format!("{defaults:?}"));
}

#[test]
fn test_issue_8_demo_ignores_a_directory_from_the_environment() {
    let mut args = Cli::try_from_args(["multiproc-exporter", "--demo"])
        .unwrap()
        .serve;
    // What parsing records when PROMETHEUS_MULTIPROC_DIR supplied the directory.
    args.dir = Some(PathBuf::from("/real/pool"));
    args.dir_from_env = true;
    let serve = args.clone().validate().unwrap();
    assert!(matches!(serve.pool, Pool::Demo { workers: 4, .. }));
    assert_eq!(serve.config.dir, PathBuf::new());
    // The same directory on the command line is a usage error.
    args.dir_from_env = false;
    assert_eq!(args.validate().unwrap_err(), ConfigError::DemoWithDir);
    // Also after the subcommand.
    let cli = Cli::try_from_args(["multiproc-exporter", "serve", "--demo", "--dir", "/d"]).unwrap();
    let Some(Command::Serve(args)) = cli.command else {
        panic!("serve expected")
    };
    assert!(!args.dir_from_env);
    assert_eq!(args.validate().unwrap_err(), ConfigError::DemoWithDir);
}

#[test]
fn test_issue_8_empty_variables_lose_their_fallback() {
    let empty = |var: &OsStr| var == DIR_ENV || var == "MULTIPROC_EXPORTER_LOG_LEVEL";
    let mut cmd = unset_empty_env(Cli::command(), &empty);
    let env_of = |cmd: &clap::Command, id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id() == id)
            .map(|a| a.get_env().map(OsStr::to_owned))
    };
    assert_eq!(env_of(&cmd, "serve_dir"), Some(None));
    assert_eq!(env_of(&cmd, "log_level"), Some(None));
    assert_eq!(
        env_of(&cmd, "log_format"),
        Some(Some("MULTIPROC_EXPORTER_LOG_FORMAT".into()))
    );
    for (sub, id) in [
        ("serve", "serve_dir"),
        ("render", "dir"),
        ("compact", "compact_dir"),
    ] {
        let sub = cmd.find_subcommand_mut(sub).unwrap();
        assert_eq!(env_of(sub, id), Some(None), "{}", sub.get_name());
    }
    // The global flags reach the subcommands without their fallback.
    cmd.build();
    let render = cmd.find_subcommand("render").unwrap();
    assert_eq!(env_of(render, "log_level"), Some(None));
}

#[test]
fn test_issue_8_only_serve_suggests_demo() {
    assert!(!ConfigError::NoDir.to_string().contains("--demo"));
    assert!(ConfigError::NoServeDir.to_string().contains("--demo"));
}

#[test]
fn test_issue_8_unresolvable_host_is_not_a_syntax_error() {
    let err = listen_addresses("no-such-host.invalid:9867").unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnresolvableHost { host, .. } if host == "no-such-host.invalid"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("--web.listen-address") && msg.contains("cannot be resolved"),
        "{msg}"
    );
    for syntax in ["nonsense", "host:port", "::1:80", "[::1:80", "host:"] {
        assert_eq!(
            listen_addresses(syntax),
            Err(ConfigError::ListenAddress(syntax.to_owned())),
            "{syntax}"
        );
    }
    assert_eq!(listen_addresses("[::1]:80").unwrap()[0].port(), 80);
    assert!(!listen_addresses("localhost:80").unwrap().is_empty());
}

#[test]
fn test_issue_8_every_value_has_a_name() {
    fn check(cmd: &clap::Command) {
        for arg in cmd.get_arguments() {
            if arg.get_action().takes_values() {
                assert!(
                    arg.get_value_names().is_some(),
                    "{} --{} has no value_name",
                    cmd.get_name(),
                    arg.get_long().unwrap_or_default()
                );
            }
        }
        cmd.get_subcommands().for_each(check);
    }
    check(&Cli::command());
}

#[test]
fn test_issue_9_the_write_timeout_is_a_positive_duration() {
    let serve = |t: &str| {
        Cli::try_from_args([
            "multiproc-exporter",
            "--dir",
            "/d",
            "--web.write-timeout",
            t,
        ])
        .unwrap()
        .serve
        .validate()
    };
    assert_eq!(
        serve("1500ms").unwrap().config.write_timeout,
        Duration::from_millis(1500)
    );
    let err = serve("0s").unwrap_err();
    assert_eq!(err, ConfigError::ZeroWriteTimeout);
    assert!(err.to_string().contains("--web.write-timeout"), "{err}");
}

#[test]
fn test_issue_10_healthcheck_probes_loopback_on_the_listen_port() {
    let target = |args: &[&str]| {
        let mut argv = vec!["multiproc-exporter", "healthcheck"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        let Some(Command::Healthcheck(h)) = cli.command else {
            panic!("healthcheck expected")
        };
        h.validate()
    };
    let addrs = |t: &crate::healthcheck::Target| {
        t.addrs.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    let t = target(&["--web.listen-address", ":9867"]).unwrap();
    assert_eq!(addrs(&t), ["127.0.0.1:9867", "[::1]:9867"]);
    assert_eq!(t.url(), "http://127.0.0.1:9867/healthz");
    assert_eq!(t.timeout, DEFAULT_HEALTHCHECK_TIMEOUT);
    let t = target(&["--web.listen-address", "0.0.0.0:80", "--timeout", "1s"]).unwrap();
    assert_eq!(addrs(&t), ["127.0.0.1:80"]);
    assert_eq!(t.timeout, Duration::from_secs(1));
    let t = target(&["--web.listen-address", "[::]:80"]).unwrap();
    assert_eq!(addrs(&t), ["[::1]:80"]);
    let t = target(&["--web.listen-address", "127.0.0.7:81"]).unwrap();
    assert_eq!(t.url(), "http://127.0.0.7:81/healthz");
    // --url wins and may name another path.
    let t = target(&[
        "--web.listen-address",
        ":1",
        "--url",
        "http://[::1]:9000/readyz",
    ])
    .unwrap();
    assert_eq!(
        (addrs(&t), t.url()),
        (
            vec!["[::1]:9000".to_owned()],
            "http://[::1]:9000/readyz".to_owned()
        )
    );
    let t = target(&["--url", "http://127.0.0.1"]).unwrap();
    assert_eq!(
        (addrs(&t), t.path.as_str()),
        (vec!["127.0.0.1:80".to_owned()], "/healthz")
    );
    for bad in [
        "https://127.0.0.1:9867/healthz",
        "127.0.0.1:9867",
        "http://",
        "http://:80/healthz",
        "http://127.0.0.1:x/healthz",
        "http://127.0.0.1:80?x",
        "http://[::1/healthz",
        "http://127.0.0.1/a b",
    ] {
        let err = target(&["--url", bad]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::HealthcheckUrl { url, .. } if url == bad),
            "{bad}: {err:?}"
        );
    }
    assert!(matches!(
        target(&["--web.listen-address", "nonsense"]),
        Err(ConfigError::ListenAddress(_))
    ));
}
