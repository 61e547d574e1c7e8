# Installation layout and the Debian package (CPack's DEB generator):
# dealimport-supervisor and dealimportctl in /usr/bin, the worker in
# /usr/libexec/dealimport (the supervisor looks there), the systemd unit,
# /etc/dealimport/dealimport.env as a conffile with every setting commented,
# the manual pages, the README and docs/, the bash completion, and
# maintainer scripts that make the dealimport system user and the
# dealimport-ops operators' group. scripts/package builds it.
set(pkgdir ${CMAKE_SOURCE_DIR}/scripts/package.d)
set(gen ${CMAKE_BINARY_DIR}/package)

install(TARGETS dealimport-supervisor dealimportctl
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS dealimport-worker
    RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/dealimport)

# The unit as the package installs it: the programs in /usr/bin.
file(READ ${CMAKE_SOURCE_DIR}/scripts/systemd/dealimport-supervisor.service unit)
string(REPLACE "/usr/local/bin/dealimport-supervisor"
    "${CMAKE_INSTALL_FULL_BINDIR}/dealimport-supervisor" unit "${unit}")
string(REGEX REPLACE "\n# Install: [^[]*\\[Unit\\]" "
# Installed by the dealimport package. Fill in /etc/dealimport/dealimport.env
# (mode 0640, root:dealimport: it holds secrets), check it with
#   dealimport-supervisor --check-config /etc/dealimport/dealimport.env
# then: systemctl enable --now dealimport-supervisor
# Operators reach the control socket /run/dealimport/control.ipc (mode 0660,
# group dealimport-ops) as members of dealimport-ops:
#   adduser alice dealimport-ops; dealimportctl status

[Unit]
Documentation=man:dealimport-supervisor(8) man:dealimport.env(5)
Documentation=file:///usr/share/doc/dealimport/operations.md.gz" unit "${unit}")
file(WRITE ${gen}/dealimport-supervisor.service "${unit}")
set(DEALIMPORT_UNIT_DIR "/lib/systemd/system" CACHE PATH
    "Where the package installs the systemd unit")
install(FILES ${gen}/dealimport-supervisor.service
    DESTINATION ${DEALIMPORT_UNIT_DIR})

install(FILES ${CMAKE_SOURCE_DIR}/scripts/systemd/dealimport.env.example
    DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/dealimport
    RENAME dealimport.env
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${CMAKE_SOURCE_DIR}/scripts/completion/dealimportctl.bash
    DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
    RENAME dealimportctl)

# Debian wants a copyright file and, for a native package, changelog.gz.
string(TIMESTAMP pkg_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(${pkgdir}/changelog.in ${gen}/changelog @ONLY)
add_custom_command(OUTPUT ${gen}/changelog.gz
    COMMAND gzip -9nc ${gen}/changelog > ${gen}/changelog.gz
    DEPENDS ${gen}/changelog VERBATIM)
add_custom_target(package-changelog ALL DEPENDS ${gen}/changelog.gz)
install(FILES ${pkgdir}/copyright ${gen}/changelog.gz
    DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The README and docs/, gzipped as Debian wants documentation over 4 KB.
set(doc_gz)
foreach(doc README.md docs/operations.md docs/data-contract.md
        docs/control-protocol.md docs/scaling.md)
    get_filename_component(name ${doc} NAME)
    add_custom_command(OUTPUT ${gen}/${name}.gz
        COMMAND gzip -9nc ${CMAKE_SOURCE_DIR}/${doc} > ${gen}/${name}.gz
        DEPENDS ${CMAKE_SOURCE_DIR}/${doc} VERBATIM)
    list(APPEND doc_gz ${gen}/${name}.gz)
endforeach()
add_custom_target(package-docs ALL DEPENDS ${doc_gz})
install(FILES ${doc_gz} DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The Prometheus alert rules and the Grafana dashboard, as they are (files
# to copy into Prometheus' rule_files and to import into Grafana).
install(FILES ${CMAKE_SOURCE_DIR}/docs/ops/dealimport-alerts.yml
    ${CMAKE_SOURCE_DIR}/docs/ops/dealimport-dashboard.json
    DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${pkgdir}/lintian-overrides
    DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
    RENAME dealimport)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME dealimport)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "CRM deal imports from CSV files into MongoDB")
# The extended description: CPack puts the summary above it and indents it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "dealimport-supervisor claims queued imports from MongoDB and runs each in
an isolated worker process with its own memory, CPU and time limits; the
workers stream the CSV file from S3-compatible storage or a directory and
report progress, checkpoints and line errors back over ZeroMQ.

dealimportctl shows, pauses, resumes and cancels imports over the
supervisor's control socket, and prints its Prometheus metrics.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "dealimport maintainers <dealimport@example.com>")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: exactly the shared libraries the programs link, from
# dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${pkgdir}/conffiles ${pkgdir}/postinst ${pkgdir}/prerm ${pkgdir}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
