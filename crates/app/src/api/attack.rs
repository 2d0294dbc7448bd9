//! The MITRE ATT&CK catalog Canopy measures coverage against: IaaS techniques and
//! sub-techniques, tactics in kill-chain order, with the ATT&CK version and MITRE's
//! attribution (public: no sign-in).

use canopy_detection::catalog::{Catalog, Technique};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use super::problem::ApiError;

/// ATT&CK catalog endpoints.
pub struct AttackApi;

/// An ATT&CK tactic (a kill-chain column).
#[derive(Debug, Object)]
pub struct TacticDto {
    /// `TA0001`.
    pub id: String,
    /// `initial-access`.
    pub shortname: String,
    /// `Initial Access`.
    pub name: String,
}

/// A sub-technique.
#[derive(Debug, Object)]
pub struct SubTechniqueDto {
    /// `T1078.004`.
    pub id: String,
    /// `Cloud Accounts`.
    pub name: String,
    /// Its page on attack.mitre.org.
    pub url: String,
    /// Tactic shortnames, in kill-chain order.
    pub tactics: Vec<String>,
}

/// A technique with its sub-techniques.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TechniqueDto {
    /// `T1078`.
    pub id: String,
    /// `Valid Accounts`.
    pub name: String,
    /// Its page on attack.mitre.org.
    pub url: String,
    /// Whether it lists the IaaS platform itself (a parent kept only for its IaaS
    /// sub-techniques does not).
    pub iaas: bool,
    /// Tactic shortnames, in kill-chain order.
    pub tactics: Vec<String>,
    /// Its IaaS sub-techniques.
    pub sub_techniques: Vec<SubTechniqueDto>,
}

/// Where the catalog comes from and on what terms.
#[derive(Debug, Object)]
pub struct AttributionDto {
    /// MITRE's copyright designation.
    pub copyright: String,
    /// The terms, in short.
    pub notice: String,
    /// The full license text, which goes with every copy.
    pub license: String,
    /// The exact source (repository, commit, paths).
    pub source: String,
}

/// The catalog.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AttackCatalogDto {
    /// The ATT&CK version (`18.1`); every coverage answer names it too.
    pub attack_version: String,
    /// `enterprise-attack`.
    pub domain: String,
    /// Tactics in kill-chain order.
    pub tactics: Vec<TacticDto>,
    /// Techniques by id, each with its sub-techniques.
    pub techniques: Vec<TechniqueDto>,
    /// MITRE's attribution and license.
    pub attribution: AttributionDto,
}

fn technique(c: &Catalog, t: &Technique) -> TechniqueDto {
    TechniqueDto {
        id: t.id.clone(),
        name: t.name.clone(),
        url: t.url.clone(),
        iaas: t.iaas,
        tactics: t.tactics.clone(),
        sub_techniques: c
            .sub_techniques(&t.id)
            .map(|s| SubTechniqueDto {
                id: s.id.clone(),
                name: s.name.clone(),
                url: s.url.clone(),
                tactics: s.tactics.clone(),
            })
            .collect(),
    }
}

#[OpenApi(tag = "ApiTags::Attack")]
impl AttackApi {
    /// The MITRE ATT&CK catalog Canopy measures against: Enterprise techniques and
    /// sub-techniques of the IaaS platform, tactics in kill-chain order, the ATT&CK version
    /// and MITRE's attribution (no sign-in needed).
    #[oai(
        path = "/attack/catalog",
        method = "get",
        operation_id = "getAttackCatalog"
    )]
    async fn catalog(&self) -> Result<Json<AttackCatalogDto>, ApiError> {
        let c = Catalog::embedded();
        let a = c.attribution();
        Ok(Json(AttackCatalogDto {
            attack_version: c.version().to_string(),
            domain: c.domain().to_string(),
            tactics: c
                .tactics()
                .iter()
                .map(|t| TacticDto {
                    id: t.id.clone(),
                    shortname: t.shortname.clone(),
                    name: t.name.clone(),
                })
                .collect(),
            techniques: c
                .techniques()
                .iter()
                .filter(|t| !t.is_sub_technique())
                .map(|t| technique(c, t))
                .collect(),
            attribution: AttributionDto {
                copyright: a.copyright.to_string(),
                notice: a.notice.clone(),
                license: a.license.to_string(),
                source: a.source.clone(),
            },
        }))
    }
}
