//! The DNS-01 flags of `certweave issue`, checked without a CA: each
//! provider's settings, and every mistake a usage error naming the flag
//! or variable, never the secret.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::issue::{IssueFlags, IssueWith, IssuerChoice};
use crate::pki::KeyAlgorithm;

const TOKEN: &str = "cf-token-0123456789abcdef";
const KEY: &str = "cf-global-key-0123456789";

/// An environment holding exactly `pairs`.
fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> + Sync {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn names() -> Vec<String> {
    vec!["example.test".into(), "*.example.test".into()]
}

fn provider(named: Dns01Provider) -> Dns01Flags {
    Dns01Flags {
        provider: Some(named),
        ..Dns01Flags::default()
    }
}

async fn choose(
    flags: Dns01Flags,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<Dns01Choice>, String> {
    flags.choose(&names(), env).await
}

async fn chosen(flags: Dns01Flags, env: &(dyn Fn(&str) -> Option<String> + Sync)) -> Dns01Choice {
    choose(flags, env).await.unwrap().expect("a provider")
}

async fn refused(flags: Dns01Flags, env: &(dyn Fn(&str) -> Option<String> + Sync)) -> String {
    let err = choose(flags, env).await.unwrap_err();
    for secret in [TOKEN, KEY] {
        assert!(!err.contains(secret), "a secret in {err}");
    }
    err
}

/// A file in `dir` holding `text`.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn acme_flags(dns01: Dns01Flags) -> IssueFlags {
    IssueFlags {
        dns_names: names(),
        out: "/nonexistent/out".into(),
        key_algorithm: KeyAlgorithm::EcdsaP256,
        issuer: IssueWith::Acme,
        acme_directory: Some("https://127.0.0.1:9/dir".into()),
        acme_ca_bundle: None,
        acme_skip_tls_verify: false,
        email: None,
        account_key: Some("/nonexistent/account.key".into()),
        eab_kid: None,
        eab_hmac_key: None,
        preferred_chain: None,
        acme_profile: None,
        http01_addr: None,
        dns01,
        ca_cert: None,
        ca_key: None,
    }
}

/// A Cloudflare token in the environment is no DNS-01 flag: it may be
/// there for other tools.
#[tokio::test]
async fn no_dns01_flags_choose_nothing() {
    let token = env(&[(CLOUDFLARE_API_TOKEN_ENV, TOKEN)]);
    assert!(choose(Dns01Flags::default(), &token)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn dns01_rfc2136_alone_still_means_rfc2136_and_is_checked_only_with_nameservers() {
    let flags = || Dns01Flags {
        rfc2136: Some("127.0.0.1:5353".into()),
        tsig_key_name: Some("certweave".into()),
        tsig_secret: Some("c2VjcmV0".into()),
        tcp: true,
        ..Dns01Flags::default()
    };
    let choice = chosen(flags(), &env(&[])).await;
    assert_eq!(choice.named, Dns01Provider::Rfc2136);
    let DnsProvider::Rfc2136(config) = &choice.provider else {
        panic!("{:?}", choice.provider)
    };
    assert_eq!(config.nameserver, "127.0.0.1:5353".parse().unwrap());
    assert_eq!(config.tsig_key_name, "certweave");
    assert!(config.tcp);
    assert!(!choice.provider.self_checked(&choice.checks));
    choice.solver().unwrap();

    // The same with --dns01-provider rfc2136, and with nameservers to
    // check through, as for an Issuer.
    let mut with_checks = flags();
    with_checks.provider = Some(Dns01Provider::Rfc2136);
    with_checks.checks.recursive_nameservers = vec!["127.0.0.1:53".parse().unwrap()];
    let choice = chosen(with_checks, &env(&[])).await;
    assert!(choice.provider.self_checked(&choice.checks));

    let err = refused(provider(Dns01Provider::Rfc2136), &env(&[])).await;
    assert!(
        err.contains("--dns01-provider rfc2136 needs --dns01-rfc2136 SERVER"),
        "{err}"
    );
}

#[tokio::test]
async fn route53_takes_region_zone_and_role_from_flags_and_credentials_from_the_environment() {
    let choice = chosen(
        Dns01Flags {
            route53_region: Some("eu-west-1".into()),
            route53_hosted_zone_id: Some("/hostedzone/Z0123456789ABC".into()),
            route53_role: Some(" arn:aws:iam::123456789012:role/dns01 ".into()),
            ..provider(Dns01Provider::Route53)
        },
        &env(&[]),
    )
    .await;
    assert_eq!(choice.named, Dns01Provider::Route53);
    assert!(choice.provider.self_checked(&choice.checks));
    let DnsProvider::Route53(config) = choice.provider else {
        panic!("{:?}", choice.provider)
    };
    assert_eq!(config.region, "eu-west-1");
    assert_eq!(config.hosted_zone_id.as_deref(), Some("Z0123456789ABC"));
    assert_eq!(
        config.role.as_deref(),
        Some("arn:aws:iam::123456789012:role/dns01")
    );
    assert!(matches!(config.credentials, Route53Credentials::Ambient));

    let err = refused(
        Dns01Flags {
            route53_role: Some("dns01".into()),
            ..provider(Dns01Provider::Route53)
        },
        &env(&[]),
    )
    .await;
    assert!(
        err.contains("--route53-role") && err.contains("arn:aws:iam::ACCOUNT:role/NAME"),
        "{err}"
    );
    let err = refused(
        Dns01Flags {
            route53_hosted_zone_id: Some("example.com".into()),
            ..provider(Dns01Provider::Route53)
        },
        &env(&[]),
    )
    .await;
    assert!(err.contains("--route53-hosted-zone-id"), "{err}");
}

#[tokio::test]
async fn cloudflare_takes_a_token_from_the_environment_or_a_file() {
    let choice = chosen(
        provider(Dns01Provider::Cloudflare),
        &env(&[(CLOUDFLARE_API_TOKEN_ENV, TOKEN)]),
    )
    .await;
    let DnsProvider::Cloudflare(config) = &choice.provider else {
        panic!("{:?}", choice.provider)
    };
    assert_eq!(config.auth, CloudflareAuth::ApiToken(TOKEN.into()));
    assert_eq!(
        config.api_url,
        crate::issuers::acme::dns::cloudflare::DEFAULT_API_URL
    );
    assert!(choice.provider.self_checked(&choice.checks));
    choice.solver().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let choice = chosen(
        Dns01Flags {
            cloudflare_api_token_file: Some(file(&dir, "token", &format!("{TOKEN}\n"))),
            cloudflare_api_url: Some("http://127.0.0.1:8080/client/v4".into()),
            ..provider(Dns01Provider::Cloudflare)
        },
        &env(&[]),
    )
    .await;
    let DnsProvider::Cloudflare(config) = &choice.provider else {
        panic!("{:?}", choice.provider)
    };
    assert_eq!(config.auth, CloudflareAuth::ApiToken(TOKEN.into()));
    assert_eq!(config.api_url, "http://127.0.0.1:8080/client/v4");
    choice.solver().unwrap();
}

#[tokio::test]
async fn cloudflare_takes_the_global_key_with_the_email() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, env) in [
        (
            Dns01Flags {
                cloudflare_email: Some("ops@example.test".into()),
                ..provider(Dns01Provider::Cloudflare)
            },
            env(&[(CLOUDFLARE_API_KEY_ENV, KEY)]),
        ),
        (
            Dns01Flags {
                cloudflare_email: Some("ops@example.test".into()),
                cloudflare_api_key_file: Some(file(&dir, "key", &format!("{KEY}\r\n"))),
                ..provider(Dns01Provider::Cloudflare)
            },
            env(&[]),
        ),
    ] {
        let choice = chosen(flags, &env).await;
        let DnsProvider::Cloudflare(config) = &choice.provider else {
            panic!("{:?}", choice.provider)
        };
        assert_eq!(
            config.auth,
            CloudflareAuth::ApiKey {
                email: "ops@example.test".into(),
                key: KEY.into()
            }
        );
        choice.solver().unwrap();
    }
}

#[tokio::test]
async fn cloudflare_needs_exactly_one_credential_and_says_which_flags_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = file(&dir, "token", TOKEN);
    let key_file = file(&dir, "key", KEY);
    let empty = file(&dir, "empty", "\n");
    let email = || Some("ops@example.test".to_owned());
    let cases: Vec<(Dns01Flags, _, &[&str])> = vec![
        (
            provider(Dns01Provider::Cloudflare),
            env(&[]),
            &[
                "--dns01-provider cloudflare needs credentials",
                "CLOUDFLARE_API_TOKEN",
                "--cloudflare-api-token-file",
                "CLOUDFLARE_API_KEY",
                "--cloudflare-email",
            ],
        ),
        (
            Dns01Flags {
                cloudflare_email: email(),
                ..provider(Dns01Provider::Cloudflare)
            },
            env(&[
                (CLOUDFLARE_API_TOKEN_ENV, TOKEN),
                (CLOUDFLARE_API_KEY_ENV, KEY),
            ]),
            &[
                "both an API token (CLOUDFLARE_API_TOKEN)",
                "(CLOUDFLARE_API_KEY)",
            ],
        ),
        (
            Dns01Flags {
                cloudflare_api_token_file: Some(token_file.clone()),
                cloudflare_api_key_file: Some(key_file.clone()),
                cloudflare_email: email(),
                ..provider(Dns01Provider::Cloudflare)
            },
            env(&[]),
            &["--cloudflare-api-token-file", "--cloudflare-api-key-file"],
        ),
        (
            provider(Dns01Provider::Cloudflare),
            env(&[(CLOUDFLARE_API_KEY_ENV, KEY)]),
            &["needs the account's email", "--cloudflare-email EMAIL"],
        ),
        (
            Dns01Flags {
                cloudflare_email: email(),
                ..provider(Dns01Provider::Cloudflare)
            },
            env(&[(CLOUDFLARE_API_TOKEN_ENV, TOKEN)]),
            &["drop --cloudflare-email"],
        ),
        (
            Dns01Flags {
                cloudflare_email: email(),
                ..provider(Dns01Provider::Cloudflare)
            },
            env(&[]),
            &[
                "--cloudflare-email needs the global API key",
                "CLOUDFLARE_API_KEY",
            ],
        ),
        (
            Dns01Flags {
                cloudflare_api_token_file: Some(token_file.clone()),
                ..provider(Dns01Provider::Cloudflare)
            },
            env(&[(CLOUDFLARE_API_TOKEN_ENV, TOKEN)]),
            &[
                "given twice",
                "unset CLOUDFLARE_API_TOKEN or drop --cloudflare-api-token-file",
            ],
        ),
        (
            Dns01Flags {
                cloudflare_api_token_file: Some(empty),
                ..provider(Dns01Provider::Cloudflare)
            },
            env(&[]),
            &["--cloudflare-api-token-file", "is empty"],
        ),
        (
            Dns01Flags {
                cloudflare_api_token_file: Some(dir.path().join("missing")),
                ..provider(Dns01Provider::Cloudflare)
            },
            env(&[]),
            &["cannot read --cloudflare-api-token-file"],
        ),
    ];
    for (flags, env, expected) in cases {
        let err = refused(flags, &env).await;
        for text in expected {
            assert!(err.contains(text), "{text:?} not in {err}");
        }
    }
}

/// What acme-dns's `POST /register` answers, under `domain`.
fn accounts_json(domain: &str) -> String {
    serde_json::json!({
        domain: {
            "username": "eabcdb41-d89f-4580-826f-3e62e9755ef2",
            "password": "pbAXVjlIOE01xbut7YnAbkhMQIkcwoHO0ek2j4Q0",
            "fulldomain": "d420c923-bbd7-4056-ab64-c3ca54c9b3cf.auth.example.org",
            "subdomain": "d420c923-bbd7-4056-ab64-c3ca54c9b3cf",
            "allowfrom": []
        }
    })
    .to_string()
}

#[tokio::test]
async fn acme_dns_reads_the_account_file_and_needs_an_account_for_every_name() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = file(&dir, "acmedns.json", &accounts_json("example.test"));
    let flags = |file: PathBuf| Dns01Flags {
        acme_dns_host: Some("https://auth.example.org".into()),
        acme_dns_account_file: Some(file),
        ..provider(Dns01Provider::AcmeDns)
    };
    let choice = chosen(flags(accounts.clone()), &env(&[])).await;
    let DnsProvider::AcmeDns(config) = &choice.provider else {
        panic!("{:?}", choice.provider)
    };
    assert_eq!(config.host, "https://auth.example.org");
    assert_eq!(config.accounts.keys().collect::<Vec<_>>(), ["example.test"]);
    assert!(choice.provider.self_checked(&choice.checks));
    choice.solver().unwrap();

    let other = file(&dir, "other.json", &accounts_json("other.test"));
    let err = refused(flags(other), &env(&[])).await;
    assert!(
        err.contains("--acme-dns-account-file")
            && err.contains("has no account for example.test")
            && err.contains("POST /register"),
        "{err}"
    );
    let broken = file(
        &dir,
        "broken.json",
        "{\"example.test\": {\"password\": \"pbAX",
    );
    let err = refused(flags(broken), &env(&[])).await;
    assert!(
        err.contains("--acme-dns-account-file") && !err.contains("pbAX"),
        "{err}"
    );

    let err = refused(
        Dns01Flags {
            acme_dns_account_file: Some(accounts.clone()),
            ..provider(Dns01Provider::AcmeDns)
        },
        &env(&[]),
    )
    .await;
    assert!(err.contains("needs --acme-dns-host URL"), "{err}");
    let err = refused(
        Dns01Flags {
            acme_dns_host: Some("https://auth.example.org".into()),
            ..provider(Dns01Provider::AcmeDns)
        },
        &env(&[]),
    )
    .await;
    assert!(err.contains("needs --acme-dns-account-file FILE"), "{err}");
}

#[tokio::test]
async fn a_providers_flag_with_another_provider_or_none_is_refused() {
    let err = refused(
        Dns01Flags {
            route53_role: Some("arn:aws:iam::1:role/r".into()),
            ..provider(Dns01Provider::Cloudflare)
        },
        &env(&[(CLOUDFLARE_API_TOKEN_ENV, TOKEN)]),
    )
    .await;
    assert_eq!(
        err,
        "--route53-role only applies to --dns01-provider route53, not cloudflare; drop it, or \
         use --dns01-provider route53"
    );
    let err = refused(
        Dns01Flags {
            rfc2136: Some("127.0.0.1".into()),
            tsig_key_name: Some("k".into()),
            ..provider(Dns01Provider::Route53)
        },
        &env(&[]),
    )
    .await;
    assert!(
        err.starts_with("--dns01-rfc2136 only applies to --dns01-provider rfc2136, not route53"),
        "{err}"
    );
    let err = refused(
        Dns01Flags {
            cloudflare_email: Some("ops@example.test".into()),
            ..Dns01Flags::default()
        },
        &env(&[]),
    )
    .await;
    assert!(
        err.contains("--cloudflare-email only applies to --dns01-provider cloudflare; add"),
        "{err}"
    );
    let err = refused(
        Dns01Flags {
            acme_dns_host: Some("https://auth.example.org".into()),
            ..provider(Dns01Provider::Route53)
        },
        &env(&[]),
    )
    .await;
    assert!(err.starts_with("--acme-dns-host only applies"), "{err}");

    let mut checks_only = Dns01Flags::default();
    checks_only.checks.propagation_timeout = Duration::from_secs(30);
    let err = refused(checks_only, &env(&[])).await;
    assert!(
        err.contains("--dns01-propagation-timeout only applies to DNS-01"),
        "{err}"
    );

    let follow_only = Dns01Flags {
        follow_cnames: true,
        ..Dns01Flags::default()
    };
    let err = refused(follow_only, &env(&[])).await;
    assert!(
        err.contains("--dns01-follow-cnames only applies to DNS-01"),
        "{err}"
    );
    let following = chosen(
        Dns01Flags {
            follow_cnames: true,
            ..provider(Dns01Provider::Cloudflare)
        },
        &env(&[(CLOUDFLARE_API_TOKEN_ENV, TOKEN)]),
    )
    .await;
    assert!(following.follow_cnames);
}

#[tokio::test]
async fn dns01_flags_apply_to_acme_only_and_turn_the_http01_default_off() {
    let options = acme_flags(provider(Dns01Provider::Cloudflare))
        .into_options_with_env(&env(&[(CLOUDFLARE_API_TOKEN_ENV, TOKEN)]))
        .await
        .unwrap();
    let IssuerChoice::Acme(acme) = options.issuer else {
        panic!("{:?}", options.issuer)
    };
    assert_eq!(acme.http01_addr, None);
    assert_eq!(acme.dns01.unwrap().named, Dns01Provider::Cloudflare);
    // Debug (logged by nobody, but printable) redacts the token.
    let shown = format!(
        "{:?}",
        acme_flags(provider(Dns01Provider::Cloudflare))
            .into_options_with_env(&env(&[(CLOUDFLARE_API_TOKEN_ENV, TOKEN)]))
            .await
            .unwrap()
    );
    assert!(!shown.contains(TOKEN), "{shown}");

    for (issuer, dns01, flag) in [
        (
            IssueWith::Selfsigned,
            provider(Dns01Provider::Cloudflare),
            "--dns01-provider",
        ),
        (
            IssueWith::Ca,
            Dns01Flags {
                route53_role: Some("arn:aws:iam::1:role/r".into()),
                ..Dns01Flags::default()
            },
            "--route53-role",
        ),
    ] {
        let mut flags = acme_flags(dns01);
        flags.issuer = issuer;
        flags.acme_directory = None;
        flags.account_key = None;
        let err = flags.into_options_with_env(&env(&[])).await.unwrap_err();
        assert_eq!(err, format!("{flag} only applies to --issuer acme"));
    }
}

/// A provider that refuses its settings when built (here a URL that is
/// none) is a usage error naming --dns01-provider, before the CA is
/// contacted (its directory is a closed port).
#[tokio::test]
async fn a_provider_refusing_its_settings_is_a_usage_error_before_the_ca_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = acme_flags(Dns01Flags {
        cloudflare_api_url: Some("ftp://cloudflare.example".into()),
        ..provider(Dns01Provider::Cloudflare)
    });
    flags.out = dir.path().join("out");
    flags.account_key = Some(dir.path().join("account.key"));
    let options = flags
        .into_options_with_env(&env(&[(CLOUDFLARE_API_TOKEN_ENV, TOKEN)]))
        .await
        .unwrap();
    let err = crate::issue::run(options).await.unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("--dns01-provider cloudflare: the Cloudflare API URL"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!dir.path().join("account.key").exists());
}
