//! The domain's errors as API errors: a status, a stable code and a message for people; the
//! cause goes to the log (as a [`Chain`]), never into the response.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use renrakucho_core::InvalidValue;
use renrakucho_identity::oidc::{ProviderAdminError, ProviderSignInError};
use renrakucho_identity::{PasskeyError, PasswordChangeError, SecondFactorError, SignInError};
use renrakucho_store::StoreError;

use super::{ApiError, Chain};

impl From<InvalidValue> for ApiError {
    fn from(e: InvalidValue) -> Self {
        Self {
            field: Some(e.field.to_string()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", e.message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Conflict { constraint } => {
                tracing::info!(%constraint, "write refused by a unique constraint");
                Self::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "同じ内容がすでに登録されています / this already exists",
                )
            }
            StoreError::MissingReference { constraint } => {
                tracing::info!(%constraint, "a reference to something that does not exist");
                Self::not_found()
            }
            StoreError::Forbidden => {
                tracing::warn!("a write was refused by row-level security");
                Self::not_found()
            }
            // A rule the application should have checked first; the constraint's name only.
            StoreError::Rule { constraint } => {
                tracing::warn!(%constraint, "a write was refused by a rule of the schema");
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    "入力内容を受け付けられません / the request was refused by a rule of the system",
                )
            }
            e if e.is_unavailable() => {
                tracing::error!(error = %Chain(&e), "database unavailable");
                Self::unavailable()
            }
            e => {
                tracing::error!(error = %Chain(&e), "storage error");
                Self::internal()
            }
        }
    }
}

impl From<renrakucho_keyring::KeyringError> for ApiError {
    fn from(e: renrakucho_keyring::KeyringError) -> Self {
        use renrakucho_keyring::KeyringError;
        match e {
            KeyringError::Store(e) => e.into(),
            e if e.is_unavailable() => {
                tracing::error!(error = %Chain(&e), "key provider unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "key_service_unavailable",
                    "暗号鍵サービスに接続できません。時間をおいて再度お試しください / the encryption key service is unavailable; please try again later",
                )
            }
            // One value failed its integrity check (altered, moved, unknown key version,
            // destroyed key): a clear refusal naming the record, never its content. Listings
            // show such an item as unreadable instead (ADR 0017).
            KeyringError::Undecryptable { row, .. } => {
                tracing::warn!(error = %Chain(&e), "a record read on its own is unreadable");
                Self::new(
                    StatusCode::CONFLICT,
                    "unreadable",
                    format!("この記録は判読できません（データの破損または改ざんのおそれ）。運用者に通知しました（記録ID: {row}） / this record is unreadable (damaged or altered data); the platform operators were told (record {row})"),
                )
            }
            // Names the table, column and row; never the content.
            e => {
                tracing::error!(error = %Chain(&e), "encrypted data could not be used");
                Self::internal()
            }
        }
    }
}

impl From<renrakucho_files::FileError> for ApiError {
    fn from(e: renrakucho_files::FileError) -> Self {
        use renrakucho_files::FileError;
        match e {
            FileError::NotFound(_) => {
                tracing::error!(error = %Chain(&e), "a stored file is missing");
                Self::internal()
            }
            FileError::Unavailable(_) => {
                tracing::error!(error = %Chain(&e), "file store unavailable");
                Self::unavailable()
            }
            e => {
                tracing::error!(error = %Chain(&e), "file store error");
                Self::internal()
            }
        }
    }
}

impl From<renrakucho_registry::CareError> for ApiError {
    fn from(e: renrakucho_registry::CareError) -> Self {
        use renrakucho_registry::CareError;
        match e {
            CareError::NotFound => Self::not_found(),
            // One answer for an unknown number, a wrong date of birth and a locked card.
            CareError::NotIdentified => Self::new(
                StatusCode::NOT_FOUND,
                "not_identified",
                "カード番号と生年月日が一致する対象者はいません（失敗が続いたカードは一時的に照会できません。登録施設に確認してください） / no patient with this card number and date of birth (a card is paused after repeated failures; ask the registering facility)",
            ),
            CareError::Locked { until } => {
                let secs = (until - time::OffsetDateTime::now_utc())
                    .whole_seconds()
                    .max(1) as u64;
                let jst = until.to_offset(time::macros::offset!(+9));
                Self {
                    retry_after: Some(secs),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "identification_locked",
                        format!(
                            "緊急閲覧の本人確認に1時間で{limit}回失敗したため、{h:02}:{m:02}まで施設からの照会を停止しています（施設管理者が確認できます） / your facility failed {limit} emergency identifications within an hour and may not try again until {h:02}:{m:02} JST (your facility administrator sees this)",
                            limit = renrakucho_registry::IDENTIFICATION_LIMIT,
                            h = jst.hour(),
                            m = jst.minute(),
                        ),
                    )
                }
            }
            CareError::Conflict(message) => Self::conflict(message),
            CareError::Forbidden(message) => Self::forbidden(&message),
            CareError::Invalid(v) => v.into(),
            CareError::Keyring(e) => e.into(),
            CareError::Files(e) => e.into(),
            CareError::Store(e) => e.into(),
            CareError::Corrupt(what) => {
                tracing::error!(%what, "a stored record could not be read");
                Self::internal()
            }
        }
    }
}

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Invalid(v) => v.into(),
            SignInError::BadCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "施設コード、ユーザーID、またはパスワードが違います / the facility code, login ID or password is wrong",
            ),
            SignInError::AccountNotActive => Self::new(
                StatusCode::FORBIDDEN,
                "account_not_active",
                "このアカウントは停止または無効化されています。施設管理者に連絡してください / this account is suspended or disabled; contact your facility administrator",
            ),
            SignInError::FacilityNotActive => Self::new(
                StatusCode::FORBIDDEN,
                "facility_not_active",
                "この施設は現在利用できません。運用者に連絡してください / this facility cannot use the service now; contact the operator",
            ),
            SignInError::Throttled { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                Self {
                    retry_after: Some(secs),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "throttled",
                        format!("ログインの試行が多すぎます。{secs}秒後に再度お試しください / too many sign-in attempts; try again in {secs} seconds"),
                    )
                }
            }
            SignInError::WrongSecondFactor => Self {
                field: Some("one_time_code".into()),
                ..Self::new(
                    StatusCode::UNAUTHORIZED,
                    "wrong_one_time_code",
                    "確認コードが違うか、すでに使われています。時間がたった場合はサインインからやり直してください / \
                     the code is wrong or was already used; if it took long, sign in again",
                )
            },
            SignInError::WrongPasskey => Self::new(
                StatusCode::UNAUTHORIZED,
                "wrong_passkey",
                "パスキーを確認できませんでした。施設コードを確かめ、この施設で登録したパスキーを使ってください。\
                 時間がたった場合は最初からやり直してください / the passkey was not accepted; check the \
                 facility code and use a passkey registered at this facility, or start again if it took long",
            ),
            SignInError::Store(e) => e.into(),
            SignInError::Keyring(e) => e.into(),
        }
    }
}

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        match e {
            PasskeyError::NotAvailable => Self::conflict(
                "このサーバーではパスキーを使えません（公開URLがドメイン名ではありません） / passkeys are \
                 not available on this server (its public URL is not a domain name)",
            ),
            PasskeyError::InvalidName => Self {
                field: Some("name".into()),
                ..Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_name",
                    "パスキーの名前は1〜60文字で入力してください / give the passkey a name of 1 to 60 characters",
                )
            },
            PasskeyError::TooMany => Self::conflict(
                "パスキーは1人10個までです。使っていないものを削除してください / at most ten passkeys per \
                 person; remove one you no longer use",
            ),
            PasskeyError::ProviderLinked => Self::conflict(
                "このアカウントは施設のIDプロバイダでサインインするため、パスキーは登録できません / this \
                 account signs in through the facility's identity provider, so it cannot have passkeys",
            ),
            PasskeyError::AlreadyRegistered => Self::conflict(
                "このパスキーはすでに登録されています / this passkey is already registered",
            ),
            PasskeyError::NotStarted => Self::conflict(
                "登録が始まっていないか、時間がたちすぎました。最初からやり直してください / registration \
                 was not started or took too long; start again",
            ),
            PasskeyError::Refused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "passkey_refused",
                "パスキーを登録できませんでした。もう一度お試しください / the passkey could not be \
                 registered; try again",
            ),
            PasskeyError::NotFound => Self::not_found(),
            PasskeyError::Store(e) => e.into(),
        }
    }
}

impl From<SecondFactorError> for ApiError {
    fn from(e: SecondFactorError) -> Self {
        match e {
            SecondFactorError::AlreadyEnrolled => Self::conflict(
                "認証アプリはすでに設定されています。変更するには先に解除してください / an \
                 authenticator is already set up; remove it first to change it",
            ),
            SecondFactorError::NotEnrolled => Self::conflict(
                "認証アプリは設定されていません / no authenticator is set up",
            ),
            SecondFactorError::NotStarted => Self::conflict(
                "設定が始まっていません。最初からやり直してください / set-up was not started; start \
                 again",
            ),
            SecondFactorError::WrongCode => Self {
                field: Some("one_time_code".into()),
                ..Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "wrong_one_time_code",
                    "確認コードが違います。認証アプリに今表示されている6桁を入力してください / the code is \
                     wrong; enter the six digits your authenticator app shows now",
                )
            },
            SecondFactorError::Throttled { retry_after } => {
                PasswordChangeError::Throttled { retry_after }.into()
            }
            SecondFactorError::NotFound => Self::not_found(),
            SecondFactorError::AdministratorsOnTheServer => Self::forbidden(
                "施設管理者の二要素認証は、運用者がサーバーでリセットします / a facility \
                 administrator's two-step verification is reset by the operators on the server",
            ),
            SecondFactorError::Store(e) => e.into(),
            SecondFactorError::Keyring(e) => e.into(),
        }
    }
}

impl From<PasswordChangeError> for ApiError {
    fn from(e: PasswordChangeError) -> Self {
        match e {
            PasswordChangeError::Rule(v) => v.into(),
            PasswordChangeError::WrongCurrentPassword => Self {
                field: Some("current_password".into()),
                ..Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "wrong_current_password",
                    "現在のパスワードが違います / the current password is wrong",
                )
            },
            PasswordChangeError::AccountNotActive => SignInError::AccountNotActive.into(),
            PasswordChangeError::Throttled { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                Self {
                    retry_after: Some(secs),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "throttled",
                        format!("試行が多すぎます。{secs}秒後に再度お試しください / too many attempts; try again in {secs} seconds"),
                    )
                }
            }
            PasswordChangeError::Hashing => {
                tracing::error!("hashing a new password failed");
                Self::internal()
            }
            PasswordChangeError::ChangedMeanwhile => Self::conflict(
                "パスワードは別の操作で変更されました。もう一度お試しください / the password was changed \
                 meanwhile; try again",
            ),
            PasswordChangeError::Store(e) => e.into(),
        }
    }
}

impl From<tower_sessions::session::Error> for ApiError {
    fn from(e: tower_sessions::session::Error) -> Self {
        tracing::error!(error = %Chain(&e), "session store error");
        Self::unavailable()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::json_only(),
            rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::too_large(),
            rejection => Self::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "リクエストの形式が正しくありません / the request body is not valid JSON for this endpoint: {}",
                    rejection.body_text()
                ),
            ),
        }
    }
}

impl From<ProviderSignInError> for ApiError {
    fn from(e: ProviderSignInError) -> Self {
        match e {
            ProviderSignInError::Invalid(v) => v.into(),
            ProviderSignInError::NoProvider => Self::new(
                StatusCode::NOT_FOUND,
                "no_identity_provider",
                "この施設ではIDプロバイダによるサインインを使っていません。ユーザーIDとパスワードでサインインしてください / \
                 this facility does not sign in through an identity provider; sign in with your login ID and password",
            ),
            ProviderSignInError::Unavailable => Self::new(
                StatusCode::BAD_GATEWAY,
                "identity_provider_unavailable",
                "施設のIDプロバイダに接続できません。時間をおいて再度お試しください。施設管理者はパスワードと確認コードでサインインできます / \
                 the facility's identity provider cannot be reached; try again later (facility administrators can sign in with their password and code)",
            ),
            ProviderSignInError::Expired => Self::new(
                StatusCode::BAD_REQUEST,
                "sign_in_expired",
                "サインインの有効期限が切れたか、すでに使われています。最初からやり直してください / \
                 this sign-in expired or was already used; please start again",
            ),
            ProviderSignInError::Refused(_) => Self::new(
                StatusCode::UNAUTHORIZED,
                "identity_provider_answer_refused",
                "IDプロバイダの応答を確認できなかったため、サインインできませんでした。施設管理者に連絡してください / \
                 the identity provider's answer could not be verified; please tell your facility administrator",
            ),
            ProviderSignInError::Denied => Self::new(
                StatusCode::UNAUTHORIZED,
                "identity_provider_denied",
                "IDプロバイダでサインインが取り消されました / the sign-in was cancelled at the identity provider",
            ),
            ProviderSignInError::NotLinked => Self::new(
                StatusCode::FORBIDDEN,
                "account_not_linked",
                "このアカウントはこの施設に登録されていません。施設管理者に連絡してください / \
                 this identity has no account at this facility; ask your facility administrator",
            ),
            ProviderSignInError::DomainNotAllowed => Self::new(
                StatusCode::FORBIDDEN,
                "email_domain_not_allowed",
                "このメールアドレスのドメインではサインインできません / \
                 sign-in with this e-mail domain is not allowed here",
            ),
            ProviderSignInError::AccountNotActive => SignInError::AccountNotActive.into(),
            ProviderSignInError::FacilityNotActive => SignInError::FacilityNotActive.into(),
            ProviderSignInError::ChangedMeanwhile => Self::conflict(
                "テスト中に設定が変更されました。もう一度テストしてください / \
                 the settings changed during the test; test again",
            ),
            ProviderSignInError::NotConfigured => Self::new(
                StatusCode::NOT_FOUND,
                "no_identity_provider",
                "IDプロバイダが設定されていません。先に設定を保存してください / no identity provider is configured; save its settings first",
            ),
            ProviderSignInError::TooManyWaiting => Self::new(
                StatusCode::FORBIDDEN,
                "too_many_waiting",
                "承認待ちのアカウントが多いため、新しいアカウントは作成できません。施設管理者に連絡してください / \
                 too many accounts wait for approval; ask your facility administrator",
            ),
            ProviderSignInError::Store(e) => e.into(),
            ProviderSignInError::Keyring(e) => e.into(),
        }
    }
}

impl From<ProviderAdminError> for ApiError {
    fn from(e: ProviderAdminError) -> Self {
        match e {
            ProviderAdminError::Invalid(v) => v.into(),
            ProviderAdminError::NotFound => Self::not_found(),
            ProviderAdminError::NotTested => Self::conflict(
                "有効にする前に、現在の設定でテストサインインを成功させてください / \
                 run a successful test sign-in with the current settings before enabling",
            ),
            ProviderAdminError::ChangedMeanwhile => Self::conflict(
                "設定は別の画面で変更されました。読み込み直してください / \
                 the settings were changed elsewhere; reload them",
            ),
            ProviderAdminError::AlreadyLinked => Self::conflict(
                "このIDはすでに別のアカウントに、またはこのアカウントは別のIDに紐付いています / \
                 this identity, or this account, is already linked",
            ),
            ProviderAdminError::AnotherAdministrator => Self::forbidden(
                "他の施設管理者のアカウントは紐付けられません（運用者がサーバーで行います） / \
                 another administrator's account is not linked by an administrator",
            ),
            ProviderAdminError::Store(e) => e.into(),
            ProviderAdminError::Keyring(e) => e.into(),
        }
    }
}
