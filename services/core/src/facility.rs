//! Facilities (利用施設), the tenants of the network (第5条, 第6条, 第8条).

use crate::InvalidValue;

crate::string_enum!(
    /// What kind of provider a facility is. 第5条: providers of medical care under the Medical
    /// Care Act, providers of in-home services under the Long-Term Care Insurance Act, and
    /// others the operator admits.
    FacilityKind {
        Hospital => "hospital" / "病院",
        Clinic => "clinic" / "診療所",
        DentalClinic => "dental_clinic" / "歯科診療所",
        Pharmacy => "pharmacy" / "薬局",
        VisitingNurseStation => "visiting_nurse_station" / "訪問看護ステーション",
        CareManagementOffice => "care_management_office" / "居宅介護支援事業所",
        HomeCareProvider => "home_care_provider" / "居宅サービス事業所",
        Municipality => "municipality" / "行政",
        Other => "other" / "その他（運用者が認めた施設）",
    }
);

crate::string_enum!(
    /// Where a facility is in its life on the network.
    FacilityStatus {
        /// Applied online, waiting for the operator (第6条1).
        Applied => "applied" / "申請中",
        /// Approved and in use.
        Active => "active" / "利用中",
        /// Stopped by the operator.
        Suspended => "suspended" / "停止中",
        /// Asked to leave (第8条), waiting for the operator.
        DeregistrationRequested => "deregistration_requested" / "廃止申請中",
        /// Left the network.
        Deregistered => "deregistered" / "廃止済み",
    }
);

impl FacilityStatus {
    /// Staff of a facility may sign in only while it is active (or while its request to leave
    /// is being processed: they still need to hand over their patients).
    pub fn allows_sign_in(self) -> bool {
        matches!(self, Self::Active | Self::DeregistrationRequested)
    }
}

/// The code staff type at sign-in to name their facility: 3 to 16 ASCII letters, digits or
/// hyphens, stored upper-case (e.g. `IZ-CLINIC-01`). Public, like the facility directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct FacilityCode(String);

impl FacilityCode {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let code = raw.trim().to_ascii_uppercase();
        let ok_len = (3..=16).contains(&code.len());
        let ok_chars = code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-');
        if ok_len && ok_chars && !code.starts_with('-') {
            Ok(Self(code))
        } else {
            Err(InvalidValue::new(
                "facility_code",
                "施設コードは英数字とハイフンで3〜16文字です / a facility code is 3 to 16 letters, digits or hyphens",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FacilityCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A facility's name as registered: 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FacilityName(String);

impl FacilityName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        crate::staff::parse_text("name", raw, 100).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_code_normalises_and_refuses_bad_shapes() {
        assert_eq!(FacilityCode::parse(" iz-01 ").unwrap().as_str(), "IZ-01");
        for bad in ["", "ab", "-abc", "ab cd", "施設コード", "abcdefghijklmnopq"] {
            assert!(
                FacilityCode::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn kinds_round_trip_through_their_spelling() {
        for kind in FacilityKind::ALL {
            assert_eq!(kind.as_str().parse::<FacilityKind>().unwrap(), *kind);
        }
        assert!("spa".parse::<FacilityKind>().is_err());
    }
}
