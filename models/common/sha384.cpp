#include "models/common/sha384.hpp"

#include <new>
#include <stdexcept>

#include <openssl/evp.h>

namespace hvsim {

namespace {
EVP_MD_CTX* as_ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }

EVP_MD_CTX* new_ctx() {
    EVP_MD_CTX* c = EVP_MD_CTX_new();
    if (!c) throw std::bad_alloc();
    if (EVP_DigestInit_ex(c, EVP_sha384(), nullptr) != 1) {
        EVP_MD_CTX_free(c);
        throw std::runtime_error("libcrypto: SHA-384 unavailable");
    }
    return c;
}
}  // namespace

Sha384::Sha384() : ctx_(new_ctx()) {}

Sha384::~Sha384() { EVP_MD_CTX_free(as_ctx(ctx_)); }

Sha384::Sha384(const Sha384& o) : ctx_(new_ctx()) {
    if (EVP_MD_CTX_copy_ex(as_ctx(ctx_), as_ctx(o.ctx_)) != 1) throw std::runtime_error("libcrypto: SHA-384 copy");
}

Sha384& Sha384::operator=(const Sha384& o) {
    if (this != &o && EVP_MD_CTX_copy_ex(as_ctx(ctx_), as_ctx(o.ctx_)) != 1)
        throw std::runtime_error("libcrypto: SHA-384 copy");
    return *this;
}

void Sha384::update(const void* data, size_t len) {
    if (len && EVP_DigestUpdate(as_ctx(ctx_), data, len) != 1) throw std::runtime_error("libcrypto: SHA-384 update");
}

Sha384::Digest Sha384::peek() const {
    Sha384 copy(*this);
    Digest d{};
    unsigned n = 0;
    if (EVP_DigestFinal_ex(as_ctx(copy.ctx_), d.data(), &n) != 1 || n != kDigestSize)
        throw std::runtime_error("libcrypto: SHA-384 final");
    return d;
}

void Sha384::reset() {
    if (EVP_DigestInit_ex(as_ctx(ctx_), EVP_sha384(), nullptr) != 1) throw std::runtime_error("libcrypto: SHA-384 init");
}

Sha384::Digest Sha384::of(const void* data, size_t len) {
    Sha384 h;
    h.update(data, len);
    return h.peek();
}

std::string to_hex(const uint8_t* p, size_t n) {
    static const char* d = "0123456789abcdef";
    std::string s;
    s.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
        s.push_back(d[p[i] >> 4]);
        s.push_back(d[p[i] & 15]);
    }
    return s;
}

}  // namespace hvsim
