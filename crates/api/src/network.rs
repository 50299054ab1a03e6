//! Network kinds: Multus `NetworkAttachmentDefinition`, kubernetes-nmstate policies and
//! states, and the SR-IOV operator's `SriovNetworkNodePolicy` and `SriovNetwork`.
//! Written by hand; nmstate's `desiredState`/`currentState` are open (nmstate's own schema
//! is large and versioned separately), the SR-IOV ranges the manual states are enforced.

use serde_json::{json, Value};

use crate::crd::{Crd, Version};
use crate::printer;
use crate::schema::{
    boolean, conditions, date_time, doc, int_or_string, integer, integer_in, object, one_of, open,
    open_object, required, root, spec_status, string, string_map, strings,
};

const MULTUS: &str = "k8s.cni.cncf.io";
const NMSTATE: &str = "nmstate.io";
const SRIOV: &str = "sriovnetwork.openshift.io";

fn network_attachment_definition() -> Value {
    root(
        "NetworkAttachmentDefinition is a CRD schema specified by the Network Plumbing Working Group to express the intent for attaching pods to one or more logical or physical networks.",
        json!({
            "spec": doc(object(json!({
                "config": doc(string(), "NetworkAttachmentDefinition config is a JSON-formatted CNI configuration"),
            })), "NetworkAttachmentDefinition spec defines the desired state of a network attachment"),
        }),
    )
}

fn nmstate_status() -> Value {
    open_object(json!({
        "conditions": conditions(),
        "lastUnavailableNodeCountUpdate": date_time(),
        "unavailableNodeCount": integer(),
    }))
}

fn node_network_configuration_policy() -> Value {
    let spec = object(json!({
        "desiredState": doc(open(), "The desired configuration of the policy"),
        "nodeSelector": doc(string_map(), "NodeSelector is a selector which must be true for the policy to be applied to the node."),
        "maxUnavailable": doc(int_or_string(), "MaxUnavailable specifies percentage or number of machines that can be updating at a time."),
        "capture": doc(string_map(), "Capture contains named nmpolicy captures to be used by the desiredState."),
    }));
    spec_status(
        "NodeNetworkConfigurationPolicy is the Schema for the nodenetworkconfigurationpolicies API",
        doc(spec, "NodeNetworkConfigurationPolicySpec defines the desired state of NodeNetworkConfigurationPolicy"),
        nmstate_status(),
    )
}

fn node_network_state() -> Value {
    root(
        "NodeNetworkState is the Schema for the nodenetworkstates API",
        json!({
            "status": open_object(json!({
                "currentState": doc(open(), "CurrentState the network state reported by nmstate"),
                "lastSuccessfulUpdateTime": date_time(),
                "conditions": conditions(),
                "handlerNetworkManagerVersion": string(),
                "handlerNmstateVersion": string(),
                "hostNetworkManagerVersion": string(),
            })),
        }),
    )
}

fn sriov_network_node_policy() -> Value {
    let nic_selector = object(json!({
        // Checked by the SR-IOV webhook rule (oxivirt-webhooks), which words the refusal as
        // the operator does; upstream's CRD has no enum here.
        "vendor": doc(string(), "The vendor hex code of SR-IoV device. Allowed value \"8086\", \"15b3\"."),
        "deviceID": doc(string(), "The device hex code of SR-IoV device."),
        "pfNames": doc(strings(), "Name of SR-IoV PF."),
        "rootDevices": doc(strings(), "PCI address of SR-IoV PF."),
        "netFilter": doc(string(), "Infrastructure Networking selection filter."),
    }));
    let spec = required(
        object(json!({
            "resourceName": doc(string(), "SRIOV Network device plugin endpoint resource name"),
            "nodeSelector": doc(string_map(), "NodeSelector selects the nodes to be configured"),
            "priority": doc(integer_in(0, 99), "Priority of the policy, higher priority policies can override lower ones."),
            "mtu": doc(json!({"type": "integer", "minimum": 1}), "MTU of VF"),
            "numVfs": doc(json!({"type": "integer", "minimum": 0}), "Number of VFs for each PF"),
            "nicSelector": doc(nic_selector, "NicSelector selects the NICs to be configured"),
            "deviceType": doc(one_of(&["netdevice", "vfio-pci"]), "The driver type for configured VFs. Allowed value \"netdevice\", \"vfio-pci\". Defaults to netdevice."),
            "isRdma": doc(boolean(), "RDMA mode. Defaults to false."),
            "needVhostNet": doc(boolean(), "mount vhost-net device. Defaults to false."),
            "linkType": doc(one_of(&["eth", "ETH", "ib", "IB"]), "NIC Link Type. Allowed value \"eth\", \"ETH\", \"ib\", and \"IB\"."),
            "eSwitchMode": doc(one_of(&["legacy", "switchdev"]), "NIC Device Mode. Allowed value \"legacy\",\"switchdev\"."),
            "vdpaType": doc(one_of(&["virtio", "vhost"]), "VDPA device type. Allowed value \"virtio\", \"vhost\""),
            "excludeTopology": doc(boolean(), "Exclude device's NUMA node when advertising this resource by SRIOV network device plugin. Default to false."),
            "externallyManaged": doc(boolean(), "don't create the virtual function only allocated them to the device plugin. Defaults to false."),
            "bridge": doc(open(), "contains bridge configuration for matching PFs, valid only for eSwitchMode==switchdev"),
        })),
        &["nicSelector", "nodeSelector", "numVfs", "resourceName"],
    );
    spec_status(
        "SriovNetworkNodePolicy is the Schema for the sriovnetworknodepolicies API",
        doc(
            spec,
            "SriovNetworkNodePolicySpec defines the desired state of SriovNetworkNodePolicy",
        ),
        open(),
    )
}

fn sriov_network() -> Value {
    let on_off = || one_of(&["on", "off"]);
    let spec = required(
        object(json!({
            "resourceName": doc(string(), "SRIOV Network device plugin endpoint resource name"),
            "networkNamespace": doc(string(), "Namespace of the NetworkAttachmentDefinition custom resource"),
            "vlan": doc(integer_in(0, 4095), "VLAN ID to assign for the VF. Defaults to 0."),
            "vlanQoS": doc(integer_in(0, 7), "VLAN QoS ID to assign for the VF. Defaults to 0."),
            "vlanProto": doc(one_of(&["802.1q", "802.1Q", "802.1ad", "802.1AD"]), "VLAN proto to assign for the VF. Defaults to 802.1q."),
            "spoofChk": doc(on_off(), "VF spoof check, (on|off)"),
            "trust": doc(on_off(), "VF trust mode (on|off)"),
            "linkState": doc(one_of(&["auto", "enable", "disable"]), "VF link state (enable|disable|auto)"),
            "maxTxRate": doc(json!({"type": "integer", "minimum": 0}), "Maximum tx rate, in Mbps, for the VF. Defaults to 0 (no rate limiting)"),
            "minTxRate": doc(json!({"type": "integer", "minimum": 0}), "Minimum tx rate, in Mbps, for the VF. Defaults to 0 (no rate limiting). min_tx_rate should be <= max_tx_rate."),
            "ipam": doc(string(), "IPAM configuration to be used for this network."),
            "capabilities": doc(string(), "Capabilities to be configured for this network. Capabilities supported: (mac|ips), e.g. '{\"mac\": true}'"),
            "metaPlugins": doc(string(), "MetaPluginsConfig configuration to be used in order to chain metaplugins to the sriov interface returned by the operator."),
            "logLevel": doc(one_of(&["panic", "error", "warning", "info", "debug", ""]), "LogLevel sets the log level of the SRIOV CNI plugin."),
            "logFile": doc(string(), "LogFile sets the log file of the SRIOV CNI plugin logs."),
        })),
        &["resourceName"],
    );
    spec_status(
        "SriovNetwork is the Schema for the sriovnetworks API",
        doc(
            spec,
            "SriovNetworkSpec defines the desired state of SriovNetwork",
        ),
        open(),
    )
}

/// The Multus, nmstate and SR-IOV CRDs.
pub(crate) fn crds() -> Vec<Crd> {
    vec![
        Crd::new(
            MULTUS,
            "NetworkAttachmentDefinition",
            "network-attachment-definitions",
        )
        .short_names(&["net-attach-def"])
        .versions(vec![Version::storage("v1")])
        .schema(network_attachment_definition()),
        Crd::new(
            NMSTATE,
            "NodeNetworkConfigurationPolicy",
            "nodenetworkconfigurationpolicies",
        )
        .short_names(&["nncp"])
        .cluster_scoped()
        .versions(vec![Version::storage("v1"), Version::served("v1beta1")])
        .schema(node_network_configuration_policy())
        .columns(printer::node_network_configuration_policy())
        .status_subresource(),
        Crd::new(NMSTATE, "NodeNetworkState", "nodenetworkstates")
            .short_names(&["nns"])
            .cluster_scoped()
            .versions(vec![Version::storage("v1beta1")])
            .schema(node_network_state())
            .status_subresource(),
        Crd::new(SRIOV, "SriovNetworkNodePolicy", "sriovnetworknodepolicies")
            .versions(vec![Version::storage("v1")])
            .schema(sriov_network_node_policy())
            .status_subresource(),
        Crd::new(SRIOV, "SriovNetwork", "sriovnetworks")
            .versions(vec![Version::storage("v1")])
            .schema(sriov_network())
            .status_subresource(),
    ]
}
