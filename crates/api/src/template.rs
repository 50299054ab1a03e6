//! OpenShift's `Template` (`template.openshift.io/v1`), which OpenShift serves natively and
//! we serve as a CRD. Written by hand; `objects[]` are arbitrary manifests and kept as given.

use serde_json::{json, Value};

use crate::crd::{Crd, Version};
use crate::schema::{array, boolean, doc, object, open, required, root, string, string_map};

const TEMPLATE: &str = "template.openshift.io";

fn template() -> Value {
    let parameter = required(
        object(json!({
            "name": doc(string(), "Name must be set and it can be referenced in Template Items using ${PARAMETER_NAME}."),
            "displayName": doc(string(), "Optional: The name that will show in UI instead of parameter 'Name'"),
            "description": doc(string(), "Description of a parameter. Optional."),
            "value": doc(string(), "Value holds the Parameter data."),
            "generate": doc(string(), "generate specifies the generator to be used to generate random string from an input value specified by From field."),
            "from": doc(string(), "From is an input value for the generator. Optional."),
            "required": doc(boolean(), "Optional: Indicates the parameter must have a value.  Defaults to false."),
        })),
        &["name"],
    );
    required(
        root(
            "Template contains the inputs needed to produce a Config.",
            json!({
                "message": doc(string(), "message is an optional instructional message that will be displayed when this template is instantiated."),
                "objects": doc(array(open()), "objects is an array of resources to include in this template."),
                "parameters": doc(array(parameter), "parameters is an optional array of Parameters used during the Template to Config transformation."),
                "labels": doc(string_map(), "labels is a optional set of labels that are applied to every object during the Template to Config transformation."),
            }),
        ),
        &["objects"],
    )
}

/// The Template CRD.
pub(crate) fn crds() -> Vec<Crd> {
    vec![Crd::new(TEMPLATE, "Template", "templates")
        .versions(vec![Version::storage("v1")])
        .schema(template())]
}
