# Robustness of the command line (issue "A tool people can lean on"): output paths stay in
# the folder the user chose, destinations are checked before a run, bad input is one line
# and exit 2, what `run` refuses `validate` refuses, costly work is refused up front.
# -DHVSIM=... -DDATA=tests/sim/data -DSCENARIOS=scenarios -DWORK=...
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/cwd)
set(R ${DATA}/robust)

# Runs hvsim; checks the exit code, that stderr matches, and for exit 2 that it is one line.
function(hv want_rc want_err)
  execute_process(COMMAND ${HVSIM} ${ARGN} WORKING_DIRECTORY ${WORK}/cwd
                  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out TIMEOUT 300)
  string(REGEX REPLACE "==[0-9]+==WARNING: ASan is ignoring[^\n]*\nFalse positive error reports may follow\nFor details see[^\n]*\n" "" err "${err}")
  if(NOT rc STREQUAL "${want_rc}")
    message(FATAL_ERROR "hvsim ${ARGN}: exit ${rc}, expected ${want_rc}; stderr: ${err}; stdout: ${out}")
  endif()
  if(NOT err MATCHES "${want_err}")
    message(FATAL_ERROR "hvsim ${ARGN}: stderr does not match '${want_err}': ${err}")
  endif()
  if(want_rc EQUAL 2)
    string(REGEX MATCHALL "\n" lines "${err}")
    list(LENGTH lines nl)
    if(NOT nl EQUAL 1)
      message(FATAL_ERROR "hvsim ${ARGN}: expected a one-line error, got ${nl} lines: ${err}")
    endif()
  endif()
  set(OUT "${out}" PARENT_SCOPE)
endfunction()

# ---- 1. the README's CI example, with a bare --junit file name ----------------------------
hv(0 "" check ${SCENARIOS}/ --junit report.xml)
if(NOT EXISTS ${WORK}/cwd/report.xml)
  message(FATAL_ERROR "check --junit report.xml: no report.xml in the working directory")
endif()
file(READ ${WORK}/cwd/report.xml junit)
if(NOT junit MATCHES "failures=\"0\" errors=\"0\"" OR NOT junit MATCHES "quickstart.json")
  message(FATAL_ERROR "report.xml: ${junit}")
endif()
# An unwritable report is found before anything runs.
hv(2 "--junit /proc/hvsim-report.xml: /proc: cannot" check ${DATA}/passing.json --junit /proc/hvsim-report.xml)

# ---- 2. a scenario name never leads outside the output folder ------------------------------
hv(0 "" run --quiet ${R}/escape_name.json)
if(EXISTS ${WORK}/escaped OR EXISTS ${WORK}/cwd/escaped OR NOT EXISTS ${WORK}/cwd/out/_._.._escaped/results.json)
  message(FATAL_ERROR "run: the name '../../escaped' wrote outside out/")
endif()
hv(0 "" check ${R}/escape_name.json --write-baseline ${WORK}/cwd/base)
file(GLOB_RECURSE written RELATIVE ${WORK} ${WORK}/*)
foreach(f ${written})
  if(NOT f MATCHES "^cwd/")
    message(FATAL_ERROR "check --write-baseline wrote ${f} outside its folder")
  endif()
endforeach()
if(NOT EXISTS ${WORK}/cwd/base/_._.._escaped/results.json)
  message(FATAL_ERROR "check --write-baseline: no baseline under base/")
endif()

# ---- 3. costly work is refused up front or made cheap --------------------------------------
hv(0 "" run --quiet --no-progress ${R}/mmap_offset_wraps.json)
hv(0 "" run --quiet --no-progress ${R}/big_host_read.json)
hv(2 "/steps/0/access/count: expected at most sim.max_accesses = [0-9]+ guest accesses in all, got 18446744073709551615 \\(an estimated .* years"
   run ${R}/huge_count.json)
hv(2 "/steps/0/host/write/size: expected at most the simulated host memory \\(host.mem_size = 512GiB\\), got 128TiB"
   run ${R}/huge_host_write.json)
hv(2 "/steps/0/ioctl/memory_encrypt_reg_region/size: expected at most sim.max_host_pages = 4194304 pages backed one by one, got 16777216 \\(64GiB, an estimated 3.4 GB"
   run ${R}/sev_pin_64g.json)
hv(2 "--set cost.vmexit=9223372036854775807: expected an integer 0..4294967295" run ${DATA}/passing.json --set cost.vmexit=9223372036854775807)
hv(2 "--set mem.llc.size=1TiB: expected a size <= 256MiB \\(the largest the model holds\\), got \"1TiB\"" run ${DATA}/passing.json --set mem.llc.size=1TiB)
hv(2 "/dev/zero: expected a scenario file of at most 64 MiB" run /dev/zero)

# ---- 4. exit codes and messages ------------------------------------------------------------
hv(2 "number_overflow.json: expected numbers within the range of a double .*'1e400'" run ${R}/number_overflow.json)
hv(2 "nul_in_name.json: /name: expected a name without control characters, got \"nul\\\\u0000name\"" run ${R}/nul_in_name.json)
hv(2 "/steps/0/parallel/1/vcpu: expected a vCPU no other member of the parallel group uses, got vCPU 0 \\(also used by /steps/0/parallel/0\\)"
   run ${R}/parallel_same_vcpu.json)
hv(2 "-o /proc/hvsim-out|/proc/hvsim-out: cannot" run -o /proc/hvsim-out ${DATA}/passing.json)
hv(2 "--tolerance: expected a finite number" check ${DATA}/passing.json --baseline ${WORK}/cwd/base --tolerance nan)
# A metric that was 0 in the baseline says so, not "+100%".
file(MAKE_DIRECTORY ${WORK}/cwd/zero/passing)
hv(0 "" run --quiet -o ${WORK}/cwd/zero/passing ${DATA}/passing.json)
file(READ ${WORK}/cwd/zero/passing/results.json base)
string(REGEX REPLACE "\"faults.npf\": [0-9]+" "\"faults.npf\": 0" base "${base}")
file(WRITE ${WORK}/cwd/zero/passing/results.json "${base}")
execute_process(COMMAND ${HVSIM} check ${DATA}/passing.json --baseline ${WORK}/cwd/zero RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 1 OR NOT out MATCHES "metric faults.npf = 1, baseline 0 \\(up from 0," OR out MATCHES "\\+100")
  message(FATAL_ERROR "baseline 0 -> 1: exit ${rc}: ${out}")
endif()

# ---- 6. validate refuses what run refuses --------------------------------------------------
foreach(case
    "stage2_platform.json|/platform: mmu.nested_format \"stage2\""
    "paging_without_memslot.json|/vm/guest_paging: guest paging needs a memslot"
    "sev_es_private.json|/vm/private/0: making the range private failed: EINVAL \\(.*this VM type"
    "misspelt_metric.json|/expect/metrics/faults.npff: expected a metric this run reports, got 'faults.npff' \\(did you mean 'faults.npf'\\?\\)"
    "parallel_same_vcpu.json|expected a vCPU no other member"
    "memslot_1pib.json|/vm/memslots/0: KVM_SET_USER_MEMORY_REGION2 failed: EINVAL \\(.*beyond the user address space")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 f)
  list(GET parts 1 msg)
  hv(2 "${f}: ${msg}|${msg}" validate ${R}/${f})
  hv(2 "${msg}" run --quiet -o ${WORK}/cwd/refused ${R}/${f})
  if(EXISTS ${WORK}/cwd/refused/results.json)
    message(FATAL_ERROR "${f}: results.json written for a refused scenario")
  endif()
endforeach()

# ---- 9. messages name their fix ------------------------------------------------------------
hv(1 "set_memory_attributes failed: ENOTTY: .*kvm.config.vm_memory_attributes" run --quiet -o ${WORK}/cwd/enotty ${R}/enotty_vm_attributes.json)

# A byte mismatch after a conversion names the conversion and its content policy.
hv(1 "expected every byte read to be 0x5a, got 0x00; the range was last converted to shared by step 1 \\(/steps/1\\) with content policy zero"
   run --quiet -o ${WORK}/cwd/policy ${R}/policy_mismatch.json)

# ---- 11. small CLI things ------------------------------------------------------------------
hv(2 "unknown subcommand 'rnu' \\(did you mean 'run'\\?\\), expected one of \\[run, validate, check" rnu x.json)
hv(2 "unknown platform 'zen5', expected one of \\[.*zen4-genoa" params zen5)
hv(0 "" graph generic)
if(NOT OUT MATCHES "}\n$")
  message(FATAL_ERROR "graph: output does not end with a newline")
endif()
# A folder with the results.json of an earlier run in it: validate and check skip that file.
file(MAKE_DIRECTORY ${WORK}/cwd/suite)
file(COPY ${DATA}/passing.json DESTINATION ${WORK}/cwd/suite)
hv(0 "" run --quiet -o ${WORK}/cwd/suite/out ${WORK}/cwd/suite/passing.json)
hv(0 "" validate ${WORK}/cwd/suite)
if(OUT MATCHES "results.json")
  message(FATAL_ERROR "validate read a results.json: ${OUT}")
endif()
hv(0 "" check ${WORK}/cwd/suite)
if(NOT OUT MATCHES "1 passed, 0 failed")
  message(FATAL_ERROR "check on a folder with results.json: ${OUT}")
endif()
