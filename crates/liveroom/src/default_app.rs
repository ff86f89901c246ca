//! The app a zero-configuration start creates once and keeps in the data directory.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{self, AppSettings};

const FILE_NAME: &str = "default-app.toml";
const ADMIN: &str = "administrator";

/// The data directory's default app, created with a random sdkappid and secret key on the
/// first start. Returns it and the file that keeps it.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<(AppSettings, PathBuf)> {
    let path = data_dir.join(FILE_NAME);
    if !path.exists() {
        create(&path)?;
    }
    load(data_dir)
}

/// The data directory's default app and the file that keeps it; an error if there is none.
pub fn load(data_dir: &Path) -> anyhow::Result<(AppSettings, PathBuf)> {
    let path = data_dir.join(FILE_NAME);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let app: AppSettings = toml::from_str(&text)
        .map_err(|error| config::toml_error(&path.display().to_string(), &text, &error))?;
    app.to_config()
        .with_context(|| format!("{}", path.display()))?;
    Ok((app, path))
}

fn create(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let key: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let app = AppSettings {
        sdkappid: rand::random_range(1_400_000_000..1_500_000_000),
        secret_key: key,
        admins: vec![ADMIN.to_owned()],
        enabled: true,
        disabled_commands: Vec::new(),
        rate_limits: Default::default(),
        webhook: None,
        before_send: None,
    };
    let text = format!(
        "# liveroom's default app, created on first start. Keep this file secret: it holds the\n\
         # app's secret key. To serve other apps, list them in a config file (see README).\n{}",
        toml::to_string(&app)?
    );
    // Write to a private temporary file, then rename: a crash never leaves half a key.
    let tmp = path.with_extension("toml.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// What a user needs to make a first call: printed to stdout, never logged.
pub fn print_credentials(
    out: &mut impl Write,
    app: &AppSettings,
    path: &Path,
    scheme: &str,
    local: SocketAddr,
    now: u64,
) -> std::io::Result<()> {
    let admin = &app.admins[0];
    let sig = liveroom_usersig::generate(
        app.sdkappid,
        &app.secret_key,
        admin,
        now,
        liveroom_usersig::DEFAULT_EXPIRE_SECS,
    );
    let host = if local.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), local.port())
    } else {
        local
    };
    writeln!(out, "sdkappid:   {}", app.sdkappid)?;
    writeln!(out, "admin:      {admin}")?;
    writeln!(out, "secret key: kept in {}", path.display())?;
    writeln!(out, "usersig:    {sig}  (valid 180 days)")?;
    writeln!(out, "try it:")?;
    writeln!(
        out,
        "  curl -s -X POST '{scheme}://{host}/v4/live_engine_http_srv/create_room?sdkappid={}&identifier={admin}&usersig={sig}&random=99999999&contenttype=json' -H 'Content-Type: application/json' -d '{{\"RoomInfo\":{{\"RoomId\":\"live-room\"}}}}'",
        app.sdkappid
    )
}
