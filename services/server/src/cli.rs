//! The command line: `serve` (the default), `migrate`, `admin`, `demo`, `audit verify`,
//! `keys`.
//! Exit codes: 0 done, 1 failed, 2 invalid configuration or usage.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rand::distributions::{Alphanumeric, DistString};
use renrakucho_core::{
    DisplayName, FacilityCode, FacilityKind, FacilityName, LoginId, Password, Profession, StaffRole,
};
use renrakucho_identity::PasswordHasher;
use renrakucho_store::{audit, create_runtime_login, Database, RoleNames};

mod city_command;
mod key_commands;

use crate::app::Application;
use crate::config::Settings;
use crate::setup::{self, Databases};
use crate::{admin_commands, demo, keys};

#[derive(Parser)]
#[command(
    name = "renrakucho",
    version,
    about = "連絡帳 Renrakucho — home-medical-care network server"
)]
struct Cli {
    /// A TOML configuration file (also RENRAKUCHO_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// Seed the demo network first (if not there yet) and print how to sign in.
        #[arg(long)]
        demo: bool,
    },
    /// Apply the database migrations and exit.
    Migrate {
        /// Also create the runtime login role (needs an owner with CREATEROLE); its generated
        /// connection URL is written to this file, readable by you only.
        #[arg(long, value_name = "FILE")]
        create_runtime_role: Option<PathBuf>,
    },
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        task: AdminTask,
    },
    /// Seed the demo network (fictional facilities and staff) and exit.
    Demo {
        /// Instead, generate a city-scale network for measurements into a fresh database: at 1,
        /// 1,000 facilities, 10,000 staff, 50,000 patients and 5,000,000 entries
        /// (docs/performance.md).
        #[arg(long, value_name = "N")]
        scale: Option<f64>,
        /// With DATABASE_URL: a superuser's connection URL, for the COPY of the notebooks.
        #[arg(long, value_name = "URL", requires = "scale")]
        superuser_url: Option<String>,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        task: AuditTask,
    },
    /// Master keys and data keys.
    Keys {
        #[command(subcommand)]
        task: key_commands::KeysTask,
    },
}

#[derive(Subcommand)]
enum AdminTask {
    /// Create a platform operator account. The password is read from standard input (asked
    /// for twice on a terminal).
    CreateOperator {
        #[arg(long)]
        login_id: String,
        #[arg(long)]
        name: String,
    },
    /// Register an active facility and its facility administrator (password from standard
    /// input).
    CreateFacility {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        /// One of: hospital, clinic, dental_clinic, pharmacy, visiting_nurse_station,
        /// care_management_office, home_care_provider, municipality, other.
        #[arg(long)]
        kind: String,
        #[arg(long)]
        admin_login_id: String,
        #[arg(long)]
        admin_name: String,
        /// The administrator's profession (doctor, nurse, pharmacist, care_manager, clerk, …).
        #[arg(long, default_value = "clerk")]
        admin_profession: String,
    },
    /// Remove the second factor (authenticator app and recovery codes) of a staff member
    /// (with --facility) or of an operator (without) who lost both; they set up a new one at
    /// their next sign-in. A facility's other staff are reset by their facility admin instead.
    ResetSecondFactor {
        /// The staff member's facility code (leave out for an operator).
        #[arg(long)]
        facility: Option<String>,
        #[arg(long)]
        login_id: String,
    },
    /// Link an operator to a subject (`sub`) of the operators' own OpenID provider
    /// (`RENRAKUCHO_OPERATOR_OIDC_ISSUER`): that subject then signs in as the operator.
    LinkOperatorIdentity {
        #[arg(long)]
        login_id: String,
        /// The subject (`sub` claim) of the person at the provider.
        #[arg(long)]
        subject: String,
    },
}

#[derive(Subcommand)]
enum AuditTask {
    /// Recompute every hash chain; name the first broken link of each. Exit 1 if any.
    Verify,
}

/// A failure with the exit code it deserves.
struct Failure {
    code: u8,
    message: String,
}

/// `audit verify`'s exit status when a chain is broken (1: it could not run; 2: configuration).
const EXIT_TAMPERED: u8 = 3;

impl Failure {
    fn config(message: impl ToString) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }
    fn runtime(message: impl ToString) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

/// sqlx's statement log, off whatever `RENRAKUCHO_LOG` asks: a statement is logged as sent,
/// and the one that enters a tenant context carries its MAC in the text
/// (`SELECT renrakucho_enter(…, '\x…'::bytea)`, ADR 0013); slow statements too.
const NO_STATEMENT_LOG: &str = "sqlx::query=off";

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RENRAKUCHO_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"))
        .add_directive(NO_STATEMENT_LOG.parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("RENRAKUCHO_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("renrakucho: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("renrakucho: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve { demo: false }) {
            Command::Serve { demo } => serve(&settings, demo).await,
            Command::Migrate {
                create_runtime_role,
            } => migrate(&settings, create_runtime_role).await,
            Command::Admin { task } => {
                with_database(&settings, |db| admin_task(db, &settings, task)).await
            }
            Command::Demo { scale: None, .. } => {
                with_database(&settings, |db| seed_demo(db, &settings)).await
            }
            Command::Demo {
                scale: Some(scale),
                superuser_url,
            } => city_command::run(&settings, scale, superuser_url.as_deref()).await,
            Command::Audit {
                task: AuditTask::Verify,
            } => verify_audit_anywhere(&settings).await,
            Command::Keys { task } => {
                with_database(&settings, |db| key_commands::run(db, &settings, task)).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("renrakucho: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn prepare(settings: &Settings) -> Result<Databases, Failure> {
    setup::prepare(settings).await.map_err(Failure::runtime)
}

/// Runs `task` against the runtime database, then stops the private cluster if we started it.
async fn with_database<F, Fut>(settings: &Settings, task: F) -> Result<(), Failure>
where
    F: FnOnce(Database) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let databases = prepare(settings).await?;
    let result = match Database::connect(&databases.connections(), 2).await {
        Ok(db) => {
            let r = task(db.clone()).await;
            db.close().await;
            r
        }
        Err(e) => Err(Failure::runtime(e)),
    };
    databases.shutdown().await;
    result
}

fn hasher(settings: &Settings) -> Result<PasswordHasher, Failure> {
    PasswordHasher::new(settings.password_params()).map_err(Failure::config)
}

async fn serve(settings: &Settings, with_demo: bool) -> Result<(), Failure> {
    let databases = prepare(settings).await?;
    let result = serve_with(settings, &databases, with_demo).await;
    databases.shutdown().await;
    result
}

async fn serve_with(
    settings: &Settings,
    databases: &Databases,
    with_demo: bool,
) -> Result<(), Failure> {
    let app = Application::build(settings, &databases.connections())
        .await
        .map_err(|e| match e {
            crate::app::BuildError::Config(e) => Failure::config(e),
            e => Failure::runtime(e),
        })?;
    if with_demo {
        let seeded = demo::seed(
            app.database(),
            &hasher(settings)?,
            app.keyring(),
            app.files(),
        )
        .await
        .map_err(Failure::runtime)?;
        if seeded {
            tracing::info!("demo network seeded");
        }
    }
    let addr = app.local_addr();
    println!("Renrakucho is listening on http://{addr}/");
    if with_demo {
        let (facility, login) = demo::DEMO_SIGN_IN;
        println!(
            "Demo sign-in: facility code {facility}, login ID {login}, password {} \
             (operator: leave the facility code empty, login ID {})",
            demo::DEMO_PASSWORD,
            demo::DEMO_OPERATOR
        );
        println!(
            "At their first sign-in, staff set up an authenticator app (two-step verification)."
        );
    }
    app.run_until(shutdown_signal())
        .await
        .map_err(Failure::runtime)?;
    tracing::info!("server stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

async fn migrate(settings: &Settings, create_runtime_role: Option<PathBuf>) -> Result<(), Failure> {
    if let Some(file) = create_runtime_role {
        let Some(owner_url) = &settings.database_url else {
            return Err(Failure::config(
                "--create-runtime-role is for an external database: set DATABASE_URL to the owner's connection",
            ));
        };
        let owner: renrakucho_store::PgConnectOptions =
            owner_url.expose().parse().map_err(Failure::config)?;
        renrakucho_store::run_migrations(&owner)
            .await
            .map_err(Failure::runtime)?;
        let role = RoleNames::default().runtime;
        let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
        create_runtime_login(&owner, &role, Some(&password))
            .await
            .map_err(Failure::runtime)?;
        let url = runtime_url(owner_url.expose(), &role, &password).map_err(Failure::config)?;
        write_private(&file, &url).map_err(Failure::runtime)?;
        println!(
            "Migrations applied. Runtime role {role} is ready; its connection URL is in {} \
             (set RENRAKUCHO_RUNTIME_DATABASE_URL to it).",
            file.display()
        );
        return Ok(());
    }
    let databases = prepare(settings).await?;
    databases.shutdown().await;
    println!("Migrations applied.");
    Ok(())
}

/// The owner's URL with the runtime role's name and password in place of the owner's.
fn runtime_url(owner_url: &str, role: &str, password: &str) -> Result<String, String> {
    let mut url = url::Url::parse(owner_url).map_err(|e| format!("DATABASE_URL: {e}"))?;
    url.set_username(role)
        .and_then(|_| url.set_password(Some(password)))
        .map_err(|_| "DATABASE_URL: cannot carry a user name".to_string())?;
    Ok(url.to_string())
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{content}")
}

/// Reads a new password for the account `login_id`: twice from a terminal, or one line from a
/// pipe; it must meet the network's rules (`context`: other words a guesser would try).
fn read_new_password(
    login_id: &str,
    rules: renrakucho_identity::PasswordRules,
    context: &[&str],
) -> Result<Password, Failure> {
    let what = login_id;
    let raw = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("{what} のパスワード / password: "))
            .map_err(Failure::runtime)?;
        let second = rpassword::prompt_password("もう一度 / again: ").map_err(Failure::runtime)?;
        if first != second {
            return Err(Failure::config("the two passwords differ"));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(Failure::runtime)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    rules
        .check(raw, login_id, context)
        .map_err(|e| Failure::config(e.message))
}

async fn admin_task(db: Database, settings: &Settings, task: AdminTask) -> Result<(), Failure> {
    let hasher = hasher(settings)?;
    let invalid = |e: renrakucho_core::InvalidValue| {
        Failure::config(format!("--{}: {}", e.field.replace('_', "-"), e.message))
    };
    let conflict = |e: renrakucho_store::StoreError| match e {
        renrakucho_store::StoreError::Conflict { .. } => {
            Failure::runtime("that login ID or facility code is already in use")
        }
        other => Failure::runtime(other),
    };
    match task {
        AdminTask::CreateOperator { login_id, name } => {
            let login_id = LoginId::parse(&login_id).map_err(invalid)?;
            let name = DisplayName::parse(&name).map_err(invalid)?;
            let password = read_new_password(
                login_id.as_str(),
                settings.password_rules(),
                &[name.as_str()],
            )?;
            let operator =
                admin_commands::create_operator(&db, &hasher, &login_id, &name, &password, true)
                    .await
                    .map_err(conflict)?;
            println!(
                "Operator {} created (id {}).",
                operator.login_id, operator.id
            );
        }
        AdminTask::CreateFacility {
            code,
            name,
            kind,
            admin_login_id,
            admin_name,
            admin_profession,
        } => {
            let code = FacilityCode::parse(&code).map_err(invalid)?;
            let name = FacilityName::parse(&name).map_err(invalid)?;
            let kind: FacilityKind = kind.parse().map_err(|e: renrakucho_core::InvalidValue| {
                Failure::config(format!("--kind: {}", e.message))
            })?;
            let login_id = LoginId::parse(&admin_login_id).map_err(invalid)?;
            let admin_name = DisplayName::parse(&admin_name).map_err(invalid)?;
            let profession: Profession =
                admin_profession
                    .parse()
                    .map_err(|e: renrakucho_core::InvalidValue| {
                        Failure::config(format!("--admin-profession: {}", e.message))
                    })?;
            let password = read_new_password(
                login_id.as_str(),
                settings.password_rules(),
                &[admin_name.as_str(), code.as_str(), name.as_str()],
            )?;
            let facility = admin_commands::create_facility(&db, &code, &name, kind)
                .await
                .map_err(conflict)?;
            let account = admin_commands::create_staff(
                &db,
                &hasher,
                &facility,
                admin_commands::StaffToIssue {
                    login_id,
                    name: admin_name,
                    role: StaffRole::FacilityAdmin,
                    profession,
                    password: &password,
                    password_must_change: true,
                },
            )
            .await
            .map_err(conflict)?;
            println!(
                "Facility {} created with administrator {}.",
                facility.code, account.login_id
            );
        }
        AdminTask::ResetSecondFactor { facility, login_id } => {
            let code = facility
                .as_deref()
                .map(FacilityCode::parse)
                .transpose()
                .map_err(invalid)?;
            let login_id = LoginId::parse(&login_id).map_err(invalid)?;
            let whose = match &code {
                Some(code) => format!("{login_id} of {code}"),
                None => format!("operator {login_id}"),
            };
            match admin_commands::reset_second_factor(&db, code.as_ref(), &login_id).await {
                Ok(true) => println!(
                    "The second factor of {whose} was removed: they set up a new one at their \
                     next sign-in."
                ),
                Ok(false) => println!("{whose} has no second factor: nothing to remove."),
                Err(renrakucho_store::StoreError::NotFound) => {
                    return Err(Failure::runtime(format!("no such account: {whose}")))
                }
                Err(e) => return Err(Failure::runtime(e)),
            }
        }
        AdminTask::LinkOperatorIdentity { login_id, subject } => {
            let login_id = LoginId::parse(&login_id).map_err(invalid)?;
            let provider = settings
                .operator_provider()
                .map_err(Failure::runtime)?
                .ok_or_else(|| {
                    Failure::runtime(
                        "the operators' provider is not configured: set \
                         RENRAKUCHO_OPERATOR_OIDC_ISSUER, _CLIENT_ID and _CLIENT_SECRET",
                    )
                })?;
            match admin_commands::link_operator_identity(&db, &login_id, &provider.issuer, &subject)
                .await
            {
                Ok(()) => println!(
                    "Operator {login_id} is linked to subject {subject:?} of {}.",
                    provider.issuer
                ),
                Err(renrakucho_store::StoreError::NotFound) => {
                    return Err(Failure::runtime(format!("no such operator: {login_id}")))
                }
                Err(renrakucho_store::StoreError::Conflict { .. }) => {
                    return Err(Failure::runtime(
                        "that subject, or this operator, is already linked",
                    ))
                }
                Err(e) => return Err(Failure::runtime(e)),
            }
        }
    }
    Ok(())
}

async fn seed_demo(db: Database, settings: &Settings) -> Result<(), Failure> {
    let keyring = keys::open_keyring(settings)
        .await
        .map_err(Failure::runtime)?;
    keyring.prepare(&db).await.map_err(Failure::runtime)?;
    let files =
        renrakucho_files::FileStore::local(&settings.files_dir()).map_err(Failure::runtime)?;
    let seeded = demo::seed(&db, &hasher(settings)?, &keyring, &files)
        .await
        .map_err(Failure::runtime)?;
    if seeded {
        println!("Demo network seeded.");
    } else {
        println!("The demo network is already there.");
    }
    let (facility, login) = demo::DEMO_SIGN_IN;
    println!(
        "Demo sign-in: facility code {facility}, login ID {login}, password {}",
        demo::DEMO_PASSWORD
    );
    Ok(())
}

/// `audit verify`: against the private cluster a running server owns (without stopping it), or
/// as any other command does.
async fn verify_audit_anywhere(settings: &Settings) -> Result<(), Failure> {
    let Some(attached) = setup::attach_running(settings)
        .await
        .map_err(Failure::runtime)?
    else {
        return with_database(settings, verify_audit).await;
    };
    let result = match Database::connect(&attached.databases.connections(), 2).await {
        Ok(db) => {
            let r = verify_audit(db.clone()).await;
            db.close().await;
            r
        }
        Err(e) => Err(Failure::runtime(e)),
    };
    attached.detach().await;
    result
}

async fn verify_audit(db: Database) -> Result<(), Failure> {
    let report = audit::verify(&db).await.map_err(Failure::runtime)?;
    if report.breaks.is_empty() {
        println!(
            "Audit log intact: {} records in {} chains.",
            report.records, report.chains
        );
        return Ok(());
    }
    for chain_break in &report.breaks {
        println!("BROKEN: {chain_break}");
    }
    Err(Failure {
        code: EXIT_TAMPERED,
        message: format!(
            "audit log tampered with: {} broken links in {} of {} chains",
            report.broken_links, report.broken_chains, report.chains
        ),
    })
}
