# Build step after JUCE writes an LV2 bundle's dsp.ttl: JUCE writes `foaf:homepage <>` and
# `foaf:mbox <>` when the company website and e-mail are empty, and an empty IRI resolves to
# the TTL file itself (hosts then show a file:// path as the author's homepage and e-mail).
# This drops those two empty statements; nothing else changes.
#   cmake -DTTL=<bundle>/dsp.ttl -P fix_lv2_ttl.cmake
file(READ "${TTL}" text)
string(REGEX REPLACE "\n[\t ]*foaf:homepage <> ;" "" text "${text}")
string(REGEX REPLACE "\n[\t ]*foaf:mbox <> ;" "" text "${text}")
file(WRITE "${TTL}" "${text}")
