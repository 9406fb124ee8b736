# Build step: copies the shipped models (presets/*.safetensors, not presets/demo/) into a
# plugin bundle, so that an installed plugin finds its presets next to its binary.
#   cmake -DFROM=<presets dir> -DTO=<bundle presets dir> -P copy_presets.cmake
file(GLOB models "${FROM}/*.safetensors")
file(REMOVE_RECURSE "${TO}")
file(MAKE_DIRECTORY "${TO}")
file(COPY ${models} DESTINATION "${TO}")
