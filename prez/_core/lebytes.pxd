# Little-endian integer loads and stores over raw bytes, shared by the
# compiled modules (cimport them: `from prez._core.lebytes cimport load_u32`).
#
# Assembled byte by byte so the result is little-endian on any host and needs
# no alignment; compilers turn each into a single load or store on x86 and
# arm64. Header-only: there is no lebytes.pyx and no extension module.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef inline uint16_t load_u16(const uint8_t* p) noexcept nogil:
    return <uint16_t>((<uint16_t>p[0]) | (<uint16_t>p[1] << 8))


cdef inline uint32_t load_u32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint64_t load_u64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>load_u32(p)) | (<uint64_t>load_u32(p + 4) << 32)


cdef inline void store_u16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = <uint8_t>v
    p[1] = <uint8_t>(v >> 8)


cdef inline void store_u32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>v
    p[1] = <uint8_t>(v >> 8)
    p[2] = <uint8_t>(v >> 16)
    p[3] = <uint8_t>(v >> 24)


cdef inline void store_u64(uint8_t* p, uint64_t v) noexcept nogil:
    store_u32(p, <uint32_t>v)
    store_u32(p + 4, <uint32_t>(v >> 32))
