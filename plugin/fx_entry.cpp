// MambaWave FX: the factory the format wrappers (VST3, LV2, AU, Standalone) call.
#include "plugin/fx_processor.h"

juce::AudioProcessor* JUCE_CALLTYPE createPluginFilter() { return new mw::plugin::FxProcessor(); }
