# Install rules, the CMake package (find_package(carbon) -> carbon::carbon),
# carbon.pc and the .deb (cpack -G DEB; tools/dev package).
#
#   <prefix>/include/carbon/{carbon,scheduler}.h
#   <libdir>/libcarbon.so.0 (.so, .a), <libdir>/cmake/carbon/, <libdir>/pkgconfig/carbon.pc
#   <libdir>/carbon/python/{_scheduler*.so, scheduler/, carbon/}
#   <bindir>/carbon
include(CMakePackageConfigHelpers)

set(CARBON_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/carbon)

install(TARGETS carbon_shared carbon_static EXPORT carbonTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/carbon/carbon.h ${PROJECT_SOURCE_DIR}/include/carbon/scheduler.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/carbon COMPONENT dev)
install(TARGETS carbon RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(TARGETS _scheduler LIBRARY DESTINATION ${CARBON_INSTALL_PYTHONDIR} COMPONENT runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/scheduler ${PROJECT_SOURCE_DIR}/embed/python/carbon
        DESTINATION ${CARBON_INSTALL_PYTHONDIR} COMPONENT runtime
        FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)

install(EXPORT carbonTargets NAMESPACE carbon:: DESTINATION ${CARBON_INSTALL_CMAKEDIR} COMPONENT dev)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/carbonConfig.cmake.in
    ${PROJECT_BINARY_DIR}/carbonConfig.cmake INSTALL_DESTINATION ${CARBON_INSTALL_CMAKEDIR}
    PATH_VARS CARBON_INSTALL_PYTHONDIR)
# 0.x: a minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/carbonConfigVersion.cmake
    COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/carbonConfig.cmake ${PROJECT_BINARY_DIR}/carbonConfigVersion.cmake
        DESTINATION ${CARBON_INSTALL_CMAKEDIR} COMPONENT dev)

# pkg-config: relocatable (prefix from the .pc file's own place).
file(RELATIVE_PATH CARBON_PC_TO_PREFIX
     ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" CARBON_PC_TO_PREFIX "${CARBON_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/carbon.pc.in ${PROJECT_BINARY_DIR}/carbon.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/carbon.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# ---- .deb ----------------------------------------------------------------------------------
set(CPACK_PACKAGE_NAME carbon-runtime)
set(CPACK_PACKAGE_VENDOR "Carbon runtime developers")
set(CPACK_PACKAGE_CONTACT "Carbon runtime developers <carbon@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Python tasklets and channels for game engines (embedding library)")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libpython${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR} (>= ${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}), libuv1 (>= 1.40), libc6")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}-dev, libuv1-dev")
set(CPACK_GENERATOR DEB)
include(CPack)
