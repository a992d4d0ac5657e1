// One weight tensor's values as a model holds them: either its own copy, or the values read in
// place from a checkpoint's mapping (a safetensors tensor stored in the model's own type), kept
// alive by a share of whatever owns the mapping. Read-only either way: a mapping is mapped
// read-only, so nothing may write through data().
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

namespace pinmark {

template <class T>
class WeightArray {
 public:
  WeightArray() = default;
  // Takes the values (implicit, so that a computed weight is assigned as before).
  WeightArray(std::vector<T> values)  // NOLINT(google-explicit-constructor)
      : owned_(std::move(values)), data_(owned_.data()), size_(owned_.size()) {}
  // Views `size` values at `data`, which `owner` keeps alive. Throws std::invalid_argument for a
  // null owner: a view is known by its owner.
  WeightArray(const T* data, size_t size, std::shared_ptr<const void> owner)
      : owner_(std::move(owner)), data_(data), size_(size) {
    if (!owner_) throw std::invalid_argument("WeightArray: a view needs the owner of its values");
  }

  // The owned vector's buffer moves with it, so a move keeps data() valid and unchanged.
  WeightArray(WeightArray&& other) noexcept { *this = std::move(other); }
  WeightArray& operator=(WeightArray&& other) noexcept {
    if (this == &other) return *this;
    owned_ = std::move(other.owned_);
    owner_ = std::move(other.owner_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
    return *this;
  }
  // A copy of an owned array owns a copy; a copy of a view views the same values.
  WeightArray(const WeightArray& other)
      : owned_(other.owned_),
        owner_(other.owner_),
        data_(other.mapped() ? other.data_ : owned_.data()),
        size_(other.size_) {}
  // Copy and swap: a copy that throws leaves this array as it was.
  WeightArray& operator=(const WeightArray& other) {
    if (this != &other) *this = WeightArray(other);
    return *this;
  }

  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T& operator[](size_t i) const { return data_[i]; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  // Whether the values are read in place from a mapping rather than owned.
  bool mapped() const { return owner_ != nullptr; }

 private:
  std::vector<T> owned_;
  std::shared_ptr<const void> owner_;
  const T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pinmark
