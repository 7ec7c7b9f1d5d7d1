// SHA-384 (FIPS 180-4) through OpenSSL's libcrypto: the hash both confidential-VM launch
// measurements are built on (the SEV-SNP firmware's launch digest, the TDX module's MRTD).
// A running context that can be copied, so a model can keep it where the firmware keeps
// it (the TDX module holds the MRTD's SHA-384 state in the TDCS until TDH.MR.FINALIZE).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace hvsim {

class Sha384 {
public:
    static constexpr size_t kDigestSize = 48;
    using Digest = std::array<uint8_t, kDigestSize>;

    Sha384();
    ~Sha384();
    Sha384(const Sha384& o);
    Sha384& operator=(const Sha384& o);

    void update(const void* data, size_t len);
    // The digest of everything fed so far; the running state is left as it is.
    Digest peek() const;
    // Starts over (the empty message).
    void reset();

    static Digest of(const void* data, size_t len);

private:
    void* ctx_;   // EVP_MD_CTX (kept out of the header so users need not include OpenSSL)
};

// Lower-case hex, two digits per byte.
std::string to_hex(const uint8_t* p, size_t n);
inline std::string to_hex(const Sha384::Digest& d) { return to_hex(d.data(), d.size()); }

}  // namespace hvsim
