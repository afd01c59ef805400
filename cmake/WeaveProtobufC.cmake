# weave_protobuf_c: compile .proto files to C with protobuf-c, at build time.
#
#   weave_protobuf_c(TARGET <target> PROTOS <a.proto>... [IMPORT_DIRS <dir>...])
#
# For each .proto, runs `protoc-c --c_out=<dir>` (or, without protoc-c,
# `protoc --c_out=<dir>` with protobuf-c's plugin) into
# <binary dir>/protobuf-c/<target>/, adds the generated .pb-c.c to the
# target's sources, that directory to its include path (PUBLIC: a library's
# users include the .pb-c.h too), and links libprotobuf-c (pkg-config module
# libprotobuf-c; Debian: libprotobuf-c-dev, protobuf-c-compiler).
#
# Relative PROTOS and IMPORT_DIRS are taken from the calling CMakeLists.txt's
# source directory. IMPORT_DIRS are the roots an `import` is resolved
# against (protoc's -I); each proto must lie under one of them, and its
# generated files keep its path below that root (IMPORT_DIRS src/protos and
# src/protos/a/b.proto give a/b.pb-c.h). Without IMPORT_DIRS each proto's
# own directory is its root.
#
# Installed beside weaveConfig.cmake, so after find_package(weave) a
# project calls it the same way. protoc-c and libprotobuf-c are looked for
# only when the function is first called: a project that does not use it
# does not need them.
include_guard(GLOBAL)

function(weave_protobuf_c)
    cmake_parse_arguments(PARSE_ARGV 0 ARG "" "TARGET" "PROTOS;IMPORT_DIRS")
    if(NOT ARG_TARGET OR NOT ARG_PROTOS)
        message(FATAL_ERROR "weave_protobuf_c: usage: weave_protobuf_c(TARGET t PROTOS a.proto...)")
    endif()
    if(NOT TARGET ${ARG_TARGET})
        message(FATAL_ERROR "weave_protobuf_c: no target named '${ARG_TARGET}'")
    endif()
    if(ARG_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "weave_protobuf_c: unexpected arguments: ${ARG_UNPARSED_ARGUMENTS}")
    endif()

    # the compiler: protoc-c, else protoc with the protoc-gen-c plugin
    find_program(WEAVE_PROTOC_C protoc-c)
    if(WEAVE_PROTOC_C)
        set(compiler "${WEAVE_PROTOC_C}")
    else()
        find_program(WEAVE_PROTOC protoc)
        find_program(WEAVE_PROTOC_GEN_C protoc-gen-c)
        if(NOT WEAVE_PROTOC OR NOT WEAVE_PROTOC_GEN_C)
            message(FATAL_ERROR "weave_protobuf_c: neither protoc-c nor protoc with protoc-gen-c "
                "was found (Debian: apt-get install protobuf-c-compiler)")
        endif()
        set(compiler "${WEAVE_PROTOC}" "--plugin=protoc-gen-c=${WEAVE_PROTOC_GEN_C}")
    endif()

    # the runtime library, once per build tree (GLOBAL: any directory may call this)
    if(NOT TARGET PkgConfig::WEAVE_PROTOBUF_C)
        find_package(PkgConfig REQUIRED)
        pkg_check_modules(WEAVE_PROTOBUF_C REQUIRED IMPORTED_TARGET GLOBAL libprotobuf-c)
    endif()

    set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/protobuf-c/${ARG_TARGET}")
    file(MAKE_DIRECTORY "${out_dir}")

    set(roots "")
    foreach(dir ${ARG_IMPORT_DIRS})
        get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
        list(APPEND roots "${dir}")
    endforeach()

    set(generated "")
    foreach(proto ${ARG_PROTOS})
        get_filename_component(proto "${proto}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
        # the root this proto lies under, and its path below it
        set(root "")
        foreach(dir ${roots})
            string(FIND "${proto}" "${dir}/" at)
            if(at EQUAL 0)
                set(root "${dir}")
                break()
            endif()
        endforeach()
        if(NOT root)
            if(roots)
                message(FATAL_ERROR "weave_protobuf_c: ${proto} is under none of IMPORT_DIRS")
            endif()
            get_filename_component(root "${proto}" DIRECTORY)
        endif()
        file(RELATIVE_PATH rel "${root}" "${proto}")
        string(REGEX REPLACE "\\.proto$" "" stem "${rel}")
        set(c "${out_dir}/${stem}.pb-c.c")
        set(h "${out_dir}/${stem}.pb-c.h")

        set(includes "-I${root}")
        foreach(dir ${roots})
            if(NOT dir STREQUAL root)
                list(APPEND includes "-I${dir}")
            endif()
        endforeach()
        add_custom_command(
            OUTPUT "${c}" "${h}"
            COMMAND ${compiler} "--c_out=${out_dir}" ${includes} "${proto}"
            DEPENDS "${proto}"
            COMMENT "protoc-c ${rel}"
            VERBATIM)
        list(APPEND generated "${c}" "${h}")
    endforeach()

    target_sources(${ARG_TARGET} PRIVATE ${generated})
    target_include_directories(${ARG_TARGET} PUBLIC "${out_dir}")
    target_link_libraries(${ARG_TARGET} PUBLIC PkgConfig::WEAVE_PROTOBUF_C)
endfunction()
