//! The CPUID a vCPU reports: what KVM supports, with the vCPU's own APIC id.

use kvm_bindings::CpuId;

/// The supported CPUID with vCPU `id`'s initial APIC id (leaf 1 EBX[31:24],
/// leaves 0xB and 0x1F EDX) and the logical processor count (leaf 1).
pub fn for_vcpu(supported: &CpuId, id: u32, count: u32) -> CpuId {
    let mut c = supported.clone();
    for e in c.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (id << 24) | ((count & 0xff) << 16);
                if count > 1 {
                    e.edx |= 1 << 28; // HTT: the count field is valid
                }
            }
            0xb | 0x1f => e.edx = id,
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    #[test]
    fn apic_id_and_count_go_where_the_sdm_says() {
        let leaf = |function| kvm_cpuid_entry2 {
            function,
            ebx: 0x1234_5678,
            ..Default::default()
        };
        let s = CpuId::from_entries(&[leaf(1), leaf(0xb), leaf(2)]).unwrap();
        let c = for_vcpu(&s, 3, 4);
        let e = c.as_slice();
        assert_eq!(e[0].ebx, 0x0304_5678);
        assert_eq!(e[0].edx & (1 << 28), 1 << 28);
        assert_eq!(e[1].edx, 3);
        assert_eq!(e[2], leaf(2));
    }
}
