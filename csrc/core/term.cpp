// Placeholder translation unit until the term store lands.
namespace bwsk {}
