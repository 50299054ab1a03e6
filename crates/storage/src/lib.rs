//! Storage and CDI: hostpath provisioner, PV/PVC binding, StorageProfiles, CDIConfig, DataVolume controllers
