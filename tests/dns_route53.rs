//! The Route53 DNS-01 solver against moto, a real AWS emulator serving the
//! Route53, STS and IAM APIs on loopback (`tests/support/moto.rs`): values
//! presented and cleaned up at a shared name, the hosted zone looked up,
//! a role assumed through STS, refused credentials, and a wildcard and
//! apex certificate issued by a real Pebble.

#[path = "support/moto.rs"]
mod moto;
#[path = "support/pebble.rs"]
mod pebble;

use std::sync::Arc;
use std::time::Duration;

use certweave::issuers::acme::dns::route53::{
    AwsCredentials, Route53Config, Route53Credentials, Route53Endpoints, Route53Solver,
};
use certweave::issuers::acme::{DnsSolver, SolverFuture, TxtRecord};
use certweave::model::IssueError;
use moto::Moto;
use pebble::{Pebble, PebbleOptions};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn config(moto: &Moto, credentials: Route53Credentials) -> Route53Config {
    Route53Config {
        region: "us-east-1".into(),
        hosted_zone_id: None,
        credentials,
        role: None,
        endpoints: Route53Endpoints {
            route53: moto.endpoint.clone(),
            sts: moto.endpoint.clone(),
        },
    }
}

fn keys() -> Route53Credentials {
    Route53Credentials::Keys(AwsCredentials::new("AKIAIOSFODNN7EXAMPLE", SECRET))
}

fn solver(config: Route53Config) -> Route53Solver {
    Route53Solver::new(config)
        .unwrap()
        .with_change_timeout(Duration::from_secs(10))
}

/// A wildcard and its apex share `_acme-challenge.<name>`: both values are
/// there while presented (beside a value another tool put there), and only
/// the other tool's value is left after both cleanups.
#[tokio::test]
async fn two_values_at_one_name_coexist_and_are_cleaned_up_one_by_one() {
    let moto = Moto::start(pebble::free_port());
    let zone = moto.create_zone("example.test", false).await;
    let mut config = config(&moto, keys());
    config.hosted_zone_id = Some(format!("/hostedzone/{zone}"));
    let solver = solver(config);
    let apex = TxtRecord::new("example.test", "apex-value");
    let wildcard = TxtRecord::new("*.example.test", "wildcard-value");
    let name = "_acme-challenge.example.test";

    let (a, b) = tokio::join!(solver.present(&apex), solver.present(&wildcard));
    a.unwrap();
    b.unwrap();
    let mut held = moto.txt(&zone, name).await;
    held.sort();
    assert_eq!(held, ["\"apex-value\"", "\"wildcard-value\""]);
    // Presenting again changes nothing.
    solver.present(&apex).await.unwrap();
    assert_eq!(moto.txt(&zone, name).await.len(), 2);

    solver.cleanup(&apex).await.unwrap();
    assert_eq!(moto.txt(&zone, name).await, ["\"wildcard-value\""]);
    solver.cleanup(&wildcard).await.unwrap();
    assert!(moto.txt(&zone, name).await.is_empty());
    // Cleaning up what is gone succeeds.
    solver.cleanup(&wildcard).await.unwrap();

    // Values of other tools at the name are kept, verbatim.
    moto.put_txt(&zone, name, &["\"v=other tool\""]).await;
    solver.present(&apex).await.unwrap();
    let mut held = moto.txt(&zone, name).await;
    held.sort();
    assert_eq!(held, ["\"apex-value\"", "\"v=other tool\""]);
    solver.cleanup(&apex).await.unwrap();
    assert_eq!(moto.txt(&zone, name).await, ["\"v=other tool\""]);
}

/// Without hostedZoneID the deepest public zone holding the name is used:
/// `sub.example.test` over `example.test`, and a private zone of the same
/// name is passed over, as cert-manager does.
#[tokio::test]
async fn the_deepest_public_zone_is_found_without_a_hosted_zone_id() {
    let moto = Moto::start(pebble::free_port());
    let parent = moto.create_zone("example.test", false).await;
    let child = moto.create_zone("sub.example.test", false).await;
    let private = moto.create_zone("deep.sub.example.test", true).await;
    let solver = solver(config(&moto, keys()));

    assert_eq!(
        solver
            .hosted_zone("_acme-challenge.deep.sub.example.test")
            .await
            .unwrap(),
        child
    );
    assert_eq!(
        solver
            .hosted_zone("_acme-challenge.other.example.test")
            .await
            .unwrap(),
        parent
    );
    assert_ne!(private, child);

    let record = TxtRecord::new("www.sub.example.test", "in-the-child");
    solver.present(&record).await.unwrap();
    assert_eq!(
        moto.txt(&child, "_acme-challenge.www.sub.example.test")
            .await,
        ["\"in-the-child\""]
    );
    assert!(moto
        .txt(&parent, "_acme-challenge.www.sub.example.test")
        .await
        .is_empty());
    solver.cleanup(&record).await.unwrap();
    assert!(moto
        .txt(&child, "_acme-challenge.www.sub.example.test")
        .await
        .is_empty());

    let err = solver
        .present(&TxtRecord::new("example.invalid", "v"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(err.is_config(), "{text}");
    assert!(
        text.contains("example.invalid") && text.contains("hostedZoneID"),
        "{text}"
    );
}

/// moto serves no DNS, so Pebble resolves through its own challtestsrv:
/// this wrapper calls the Route53 solver, then copies the TXT set moto
/// holds at the name into challtestsrv. What Pebble validates is thus
/// exactly what the solver left in Route53.
struct MirroredRoute53 {
    solver: Route53Solver,
    moto: Arc<Moto>,
    zone: String,
    challtestsrv: String,
}

impl MirroredRoute53 {
    async fn mirror(&self, fqdn: &str) {
        pebble::clear_txt(&self.challtestsrv, fqdn).await;
        for value in self.moto.txt(&self.zone, fqdn).await {
            pebble::set_txt(&self.challtestsrv, fqdn, value.trim_matches('"')).await;
        }
    }
}

impl DnsSolver for MirroredRoute53 {
    fn present<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(async move {
            self.solver.present(record).await?;
            self.mirror(&record.fqdn).await;
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(async move {
            self.solver.cleanup(record).await?;
            self.mirror(&record.fqdn).await;
            Ok(())
        })
    }
}

/// A wildcard and apex certificate from a real Pebble, both challenges
/// answered through Route53 (moto, mirrored into Pebble's DNS as above);
/// nothing is left in the zone afterwards.
#[tokio::test]
async fn a_wildcard_and_apex_certificate_is_issued_through_route53() {
    let moto = Arc::new(Moto::start(pebble::free_port()));
    let zone = moto.create_zone("example.test", false).await;
    let pebble = Pebble::start(PebbleOptions::http01(pebble::free_port()));
    let mirrored = MirroredRoute53 {
        solver: solver(config(&moto, keys())),
        moto: moto.clone(),
        zone: zone.clone(),
        challtestsrv: pebble.challtestsrv_management().unwrap(),
    };
    pebble::issue_wildcard(&pebble, Arc::new(mirrored), || moto.log()).await;
    assert!(
        moto.txt(&zone, "_acme-challenge.example.test")
            .await
            .is_empty(),
        "records left behind in Route53"
    );
}

/// With `role`, the solver signs with temporary credentials from STS
/// AssumeRole (moto records the assumed role and its session name); with
/// STS unreachable it fails, transiently, naming STS.
#[tokio::test]
async fn a_role_is_assumed_through_sts() {
    let moto = Moto::start(pebble::free_port());
    let zone = moto.create_zone("example.test", false).await;
    let role = moto.create_role("certweave-dns", &["route53:*"]).await;
    let mut with_role = config(&moto, keys());
    with_role.role = Some(role.clone());
    let solver = solver(with_role);
    let record = TxtRecord::new("role.example.test", "from-a-role");
    solver.present(&record).await.unwrap();
    assert_eq!(
        moto.txt(&zone, "_acme-challenge.role.example.test").await,
        ["\"from-a-role\""]
    );
    solver.cleanup(&record).await.unwrap();
    let state = moto.state().await;
    assert!(
        state.contains("certweave-dns") && state.contains("certweave"),
        "moto holds no session of the assumed role"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut no_sts = config(&moto, keys());
    no_sts.role = Some(role);
    no_sts.endpoints.sts = format!("http://127.0.0.1:{port}");
    let err = solver_err(no_sts, &record).await;
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("STS"), "{err}");
}

/// EKS IAM roles for service accounts: the token file is exchanged with
/// STS AssumeRoleWithWebIdentity (unsigned), and the change is signed with
/// what STS hands out; a missing token file is a configuration error
/// naming it.
#[tokio::test]
async fn a_web_identity_token_is_exchanged_for_the_roles_credentials() {
    let moto = Moto::start(pebble::free_port());
    let zone = moto.create_zone("example.test", false).await;
    let role = moto.create_role("certweave-irsa", &["route53:*"]).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2VydHdlYXZlOmNlcnR3ZWF2ZSJ9.c2ln\n").unwrap();
    let solver = solver(config(
        &moto,
        Route53Credentials::WebIdentity {
            role_arn: role.clone(),
            token_file: token_file.clone(),
        },
    ));
    let record = TxtRecord::new("irsa.example.test", "from-a-token");
    solver.present(&record).await.unwrap();
    assert_eq!(
        moto.txt(&zone, "_acme-challenge.irsa.example.test").await,
        ["\"from-a-token\""]
    );
    solver.cleanup(&record).await.unwrap();
    assert!(moto.state().await.contains("certweave-irsa"));

    let missing = dir.path().join("missing");
    let err = solver_err(
        config(
            &moto,
            Route53Credentials::WebIdentity {
                role_arn: role,
                token_file: missing.clone(),
            },
        ),
        &record,
    )
    .await;
    assert!(err.is_config(), "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

async fn solver_err(config: Route53Config, record: &TxtRecord) -> IssueError {
    solver(config).present(record).await.unwrap_err()
}

/// With moto checking credentials: an unknown access key and a wrong
/// secret are configuration errors that name the key ID and never the
/// secret, for Route53 and for STS. A right key passes moto's signature
/// check at STS (moto verifies signatures of form-encoded POSTs; it
/// computes those of GET requests over the query as if it were a body, so
/// Route53 reads cannot be verified there), and a key whose policy lacks
/// sts:AssumeRole is denied, with the permissions to grant in the error.
#[tokio::test]
async fn refused_credentials_are_configuration_errors_naming_the_key_not_the_secret() {
    // Setup: a zone (1 request), two users with keys and policies (3 each).
    let moto = Moto::start_with_auth(pebble::free_port(), 7);
    let zone = moto.create_zone("example.test", false).await;
    let key = moto
        .create_user_with_key("dns", &["route53:*", "sts:AssumeRole"])
        .await;
    let no_sts = moto.create_user_with_key("nosts", &["route53:*"]).await;
    let record = TxtRecord::new("example.test", "v");
    let with_zone = |credentials| {
        let mut config = config(&moto, credentials);
        config.hosted_zone_id = Some(zone.clone());
        config
    };

    let unknown = solver_err(
        with_zone(Route53Credentials::Keys(AwsCredentials::new(
            "AKIAUNKNOWNKEY000000",
            SECRET,
        ))),
        &record,
    )
    .await;
    let text = unknown.to_string();
    assert!(unknown.is_config(), "{text}");
    assert!(
        text.contains("AKIAUNKNOWNKEY000000") && text.contains("InvalidClientTokenId"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");

    let wrong_secret = "not-the-secret-of-this-key";
    let wrong = solver_err(
        with_zone(Route53Credentials::Keys(AwsCredentials::new(
            &key.access_key_id,
            wrong_secret,
        ))),
        &record,
    )
    .await;
    let text = wrong.to_string();
    assert!(wrong.is_config(), "{text}");
    assert!(
        text.contains(&key.access_key_id) && text.contains("SignatureDoesNotMatch"),
        "{text}"
    );
    assert!(!text.contains(wrong_secret), "{text}");

    let role = "arn:aws:iam::123456789012:role/certweave-dns";
    let mut wrong_at_sts = with_zone(Route53Credentials::Keys(AwsCredentials::new(
        &key.access_key_id,
        wrong_secret,
    )));
    wrong_at_sts.role = Some(role.into());
    let err = solver_err(wrong_at_sts, &record).await;
    let text = err.to_string();
    assert!(err.is_config(), "{text}");
    assert!(
        text.starts_with("issuer misconfigured: STS") && text.contains(&key.access_key_id),
        "{text}"
    );
    assert!(!text.contains(wrong_secret), "{text}");

    // The right key: STS accepts the signature and hands out credentials;
    // what fails next is the Route53 read (see above), not STS.
    let mut right = with_zone(Route53Credentials::Keys(AwsCredentials::new(
        &key.access_key_id,
        &key.secret_access_key,
    )));
    right.role = Some(role.into());
    let err = solver_err(right, &record).await;
    assert!(
        err.to_string().starts_with("issuer misconfigured: Route53"),
        "STS refused a correctly signed request: {err}"
    );

    let mut denied = with_zone(Route53Credentials::Keys(AwsCredentials::new(
        &no_sts.access_key_id,
        &no_sts.secret_access_key,
    )));
    denied.role = Some(role.into());
    let err = solver_err(denied, &record).await;
    let text = err.to_string();
    assert!(err.is_config(), "{text}");
    assert!(
        text.contains("AccessDenied")
            && text.contains("sts:AssumeRole")
            && text.contains(&no_sts.access_key_id),
        "{text}"
    );
    assert!(!text.contains(&no_sts.secret_access_key), "{text}");
}
