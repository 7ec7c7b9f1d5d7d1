# results.json says what the run was: status, failures with pointers, per-step results,
# warnings from the VM type's backend, the version and the preset.
file(REMOVE_RECURSE ${WORK})
function(run_to dir file want_rc)
  execute_process(COMMAND ${HVSIM} run --no-progress -o ${WORK}/${dir} ${ARGN} ${file}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL want_rc)
    message(FATAL_ERROR "${file}: exit ${rc}, expected ${want_rc}: ${err}")
  endif()
  if(NOT EXISTS ${WORK}/${dir}/results.json)
    message(FATAL_ERROR "${file}: no results.json (exit ${rc})")
  endif()
  file(READ ${WORK}/${dir}/results.json json)
  set(json "${json}" PARENT_SCOPE)
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()
function(want what got expected)
  if(NOT "${got}" STREQUAL "${expected}")
    message(FATAL_ERROR "${what}: got '${got}', expected '${expected}'")
  endif()
endfunction()

# A passing run.
run_to(pass ${DATA}/passing.json 0)
string(JSON st GET "${json}" status)
want("passing: status" "${st}" "passed")
string(JSON nf LENGTH "${json}" failures)
want("passing: failures" "${nf}" "0")
string(JSON nw LENGTH "${json}" warnings)
want("passing: warnings of a default VM" "${nw}" "0")
string(JSON ver GET "${json}" hvsim_version)
execute_process(COMMAND ${HVSIM} --version OUTPUT_VARIABLE v)
if(NOT v MATCHES "hvsim ${ver}")
  message(FATAL_ERROR "results.json hvsim_version ${ver}, --version says ${v}")
endif()
string(JSON preset GET "${json}" preset name)
want("passing: preset" "${preset}" "zen4-genoa")
if(NOT out MATCHES "status: passed")
  message(FATAL_ERROR "passing: the summary has no status line: ${out}")
endif()

# An override is recorded against the preset's value.
run_to(override ${DATA}/passing.json 0 --set mmu.l2_tlb.entries=1536)
string(JSON ov GET "${json}" preset overrides mmu.l2_tlb.entries value)
string(JSON pv GET "${json}" preset overrides mmu.l2_tlb.entries preset_value)
string(JSON origin GET "${json}" preset overrides mmu.l2_tlb.entries origin)
want("override value" "${ov}" "1536")
want("override preset value" "${pv}" "3072")
want("override origin" "${origin}" "--set")

# A failed expectation: status failed, the failure with its pointer, the step as it was.
run_to(fail ${DATA}/failing_expect.json 1)
string(JSON st GET "${json}" status)
want("failing: status" "${st}" "failed")
string(JSON ptr GET "${json}" failures 0 pointer)
string(JSON kind GET "${json}" failures 0 kind)
string(JSON msg GET "${json}" failures 0 message)
want("failing: pointer" "${ptr}" "/steps/0")
want("failing: kind" "${kind}" "expectation")
if(NOT msg MATCHES "expected every byte read to be 0x11, got 0x00")
  message(FATAL_ERROR "failing: message ${msg}")
endif()
string(JSON passed GET "${json}" steps 0 passed)
string(JSON bytes GET "${json}" steps 0 bytes)
string(JSON expected GET "${json}" steps 0 expected)
want("failing: step passed" "${passed}" "OFF")
want("failing: step bytes" "${bytes}" "0x00")
want("failing: step expected" "${expected}" "bytes 0x11")

# A VM that cannot be built is bad input: exit 2, one line naming the rule, no results.
execute_process(COMMAND ${HVSIM} run --no-progress -o ${WORK}/setup ${DATA}/setup_error.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
want("setup error: exit" "${rc}" "2")
if(NOT err MATCHES "/vm/private/0: making the range private failed: EINVAL")
  message(FATAL_ERROR "setup error: ${err}")
endif()
if(EXISTS ${WORK}/setup/results.json)
  message(FATAL_ERROR "setup error: a results.json was written for bad input")
endif()

# A model error part-way through the run: status error, the reason, still a results document.
run_to(error ${DATA}/model_error.json 1)
string(JSON st GET "${json}" status)
string(JSON why GET "${json}" error)
want("model error: status" "${st}" "error")
if(NOT why MATCHES "step 0 \\(/steps/0\\): vCPU 0: guest page-table region exhausted")
  message(FATAL_ERROR "model error: ${why}")
endif()

# A TDX VM without a platform gets the preset made for it (sapphire-rapids); only the
# parts of the TD the run does not model remain as a warning, in the results and the summary.
run_to(tdx ${SCENARIOS}/kvm-selftests/guest_memfd-test_create_guest_memfd-tdx.json 0)
string(JSON preset GET "${json}" preset name)
want("tdx without a platform: preset" "${preset}" "sapphire-rapids")
string(JSON nw LENGTH "${json}" warnings)
want("tdx on sapphire-rapids: warnings" "${nw}" "1")
string(JSON w0 GET "${json}" warnings 0)
if(NOT w0 MATCHES "TDX partly modelled")
  message(FATAL_ERROR "tdx warnings: ${w0}")
endif()
if(NOT out MATCHES "warning: TDX partly modelled")
  message(FATAL_ERROR "tdx: the summary does not print the warnings: ${out}")
endif()
# ... and on an AMD preset it is refused with one line (exit 2, no results).
file(READ ${SCENARIOS}/kvm-selftests/guest_memfd-test_create_guest_memfd-tdx.json scn)
string(JSON scn SET "${scn}" platform "\"zen4-genoa\"")
file(WRITE ${WORK}/tdx-amd.json "${scn}")
execute_process(COMMAND ${HVSIM} run --no-progress -o ${WORK}/tdx-amd ${WORK}/tdx-amd.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
want("tdx on zen4-genoa: exit" "${rc}" "2")
if(NOT err MATCHES "/platform: a tdx VM needs an Intel host with EPT and the TDX module")
  message(FATAL_ERROR "tdx on zen4-genoa: ${err}")
endif()
string(REGEX MATCHALL "\n" nl "${err}")
list(LENGTH nl nlines)
want("tdx on zen4-genoa: one line" "${nlines}" "1")
# 2M private leaves (kvm.config.tdx_huge_private) need 2 MiB guest_memfd folios: refused
# with one line without gmem.max_order = 9.
file(READ ${SCENARIOS}/kvm-selftests/guest_memfd-test_create_guest_memfd-tdx.json scn)
string(JSON scn SET "${scn}" params "{\"kvm.config.tdx_huge_private\": true}")
file(WRITE ${WORK}/tdx-huge.json "${scn}")
execute_process(COMMAND ${HVSIM} run --no-progress -o ${WORK}/tdx-huge ${WORK}/tdx-huge.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
want("tdx huge without 2M folios: exit" "${rc}" "2")
if(NOT err MATCHES "/params/kvm.config.tdx_huge_private: needs gmem.max_order = 9")
  message(FATAL_ERROR "tdx huge without 2M folios: ${err}")
endif()
string(REGEX MATCHALL "\n" nl "${err}")
list(LENGTH nl nlines)
want("tdx huge without 2M folios: one line" "${nlines}" "1")

# The summary's numbers say what they are: the guest kernel's guest-physical lookups apart
# from the TLB's, fault outcomes, the per-vCPU table, the step table.
run_to(race ${SCENARIOS}/examples/guest-page-table-race.json 0)
foreach(re "TLB +[0-9,]+ lookups: L1 hits [0-9.]+%, L2 hits [0-9.]+%, misses [0-9.]+%"
           "\\+ [0-9,]+ guest-physical lookups by the guest kernel"
           "walks +[0-9,]+ walks \\([0-9,]+ two-dimensional = TLB misses, [0-9,]+ nested-only\\)"
           "PWC hits [0-9,]+ \\(upper levels skipped, no memory ref\\)"
           "outcomes: mapped [0-9,]+, spurious [0-9,]+"
           "vCPU +accesses +TLB misses" "step +op +result +cycles")
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "guest-page-table-race summary lacks '${re}': ${out}")
  endif()
endforeach()
string(JSON v0 GET "${json}" metrics vcpu.0.accesses)
string(JSON v1 GET "${json}" metrics vcpu.1.accesses)
string(JSON all GET "${json}" metrics accesses)
math(EXPR sum "${v0} + ${v1}")
want("vcpu.0.accesses + vcpu.1.accesses" "${sum}" "${all}")

# vm.private is how the VM starts, not a conversion.
run_to(setup-private ${SCENARIOS}/examples/design-example-snp-convert-2m.json 0)
string(JSON n GET "${json}" conversions setup count)
string(JSON np GET "${json}" conversions to_private count)
string(JSON pages GET "${json}" metrics setup.private.pages)
want("vm.private: conversions.setup.count" "${n}" "1")
# On an SNP guest the only conversions to private are the guest's own page-state changes
# (lazy acceptance of its 2 MiB units), not the setup.
string(JSON psc GET "${json}" metrics snp.psc_requests)
want("vm.private: conversions.to_private.count" "${np}" "${psc}")
want("vm.private: setup.private.pages" "${pages}" "262144")
