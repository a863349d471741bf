/* A stand-in for NVIDIA's libnvinfer / libnvonnxparser / libnvinfer_plugin (and 8.6's
 * libnvparsers), so that the real `tensorrt` Python bindings (a pybind11 module) load for
 * introspection on a machine without TensorRT's libraries.
 *
 * These are the only TensorRT symbols the bindings import (`nm -D --undefined-only
 * tensorrt.so`). Module import defines classes and enums and never calls them; anything
 * that does call one (creating a Builder, Runtime, parser, plugin registry) gets NULL and
 * fails, which is the point: this library is for reading the API, never for building.
 * The C++ parser factories of 8.6 (nvuffparser/nvcaffeparser1) are mangled names, defined
 * below with asm labels so that plain C can export them.
 *
 * Build: gcc -shared -fPIC -o libnvinfer_standin.so nvinfer_standin.c
 */
#include <stddef.h>

#define STANDIN(name) void *name(void) { return NULL; }

STANDIN(createInferBuilder_INTERNAL)
STANDIN(createInferRefitter_INTERNAL)
STANDIN(createInferRuntime_INTERNAL)
STANDIN(createNvOnnxParser_INTERNAL)
STANDIN(createNvOnnxParserRefitter_INTERNAL)
STANDIN(getBuilderPluginRegistry)
STANDIN(getPluginRegistry)
STANDIN(initLibNvInferPlugins)

int getNvOnnxParserVersion(void) { return 0; }

/* 8.6 only: nvuffparser::createUffParser(), nvuffparser::FieldMap::FieldMap(char const*,
 * void const*, nvuffparser::FieldType, int), nvcaffeparser1::createCaffeParser(),
 * nvcaffeparser1::shutdownProtobufLibrary(). */
void *standin_uff(void) __asm__("_ZN11nvuffparser15createUffParserEv");
void *standin_uff(void) { return NULL; }
void standin_fieldmap(void) __asm__("_ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi");
void standin_fieldmap(void) {}
void *standin_caffe(void) __asm__("_ZN14nvcaffeparser117createCaffeParserEv");
void *standin_caffe(void) { return NULL; }
void standin_shutdown(void) __asm__("_ZN14nvcaffeparser123shutdownProtobufLibraryEv");
void standin_shutdown(void) {}
