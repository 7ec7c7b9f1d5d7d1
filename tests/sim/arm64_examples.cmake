# The shipped x86 examples docs/arm64.md lists as running on neoverse-n2 run there and meet
# their expectations (expect.arch.arm64 where an example states arm64's own); the x86-only
# VM types are refused with the reason.
file(REMOVE_RECURSE ${WORK})
set(runs
    ${SCENARIOS}/quickstart.json
    ${SCENARIOS}/examples/data-through-caches.json
    ${SCENARIOS}/examples/data-through-caches-off.json
    ${SCENARIOS}/examples/guest-page-table-race.json
    ${SCENARIOS}/examples/live-migration-dirty-log.json
    ${SCENARIOS}/examples/race-fault-vs-punch-hole.json
    ${SCENARIOS}/examples/replay-gzip.json
    ${SCENARIOS}/examples/zero-page-random-reads.json)
foreach(f ${runs})
  get_filename_component(n ${f} NAME_WE)
  execute_process(COMMAND ${HVSIM} run --quiet --no-progress -o ${WORK}/${n} --set platform=neoverse-n2 ${f}
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${n} on neoverse-n2: exit ${rc}: ${err}")
  endif()
  file(READ ${WORK}/${n}/results.json text)
  string(JSON warnings GET "${text}" warnings)
  if(NOT warnings STREQUAL "[]")
    message(FATAL_ERROR "${n} on neoverse-n2: warnings ${warnings}")
  endif()
endforeach()
# The guest's stage 1 is walked: guest page faults and stage-1 descriptor reads.
file(READ ${WORK}/quickstart/results.json text)
string(JSON gpf GET "${text}" metrics faults.guest_pf)
string(JSON pt GET "${text}" metrics guest.pt_pages)
if(gpf EQUAL 0 OR pt EQUAL 0)
  message(FATAL_ERROR "quickstart on neoverse-n2: no guest stage-1 faults (${gpf}) or tables (${pt})")
endif()
execute_process(COMMAND ${HVSIM} run --quiet --no-progress -o ${WORK}/snp --set platform=neoverse-n2
                        ${SCENARIOS}/examples/snp-demand-pinning.json
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "VM type \"snp\" is x86-only")
  message(FATAL_ERROR "snp on neoverse-n2: exit ${rc}: ${err}")
endif()
